//! The request-response codec of `/platform/rpc/1`: one length-prefixed frame each way
//! (`len u32 LE | bytes`), lengths checked against limits before anything is read.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

use crate::stats::Reason;
use crate::wire::{Request, Response};

/// An inbound frame refused by the codec (too long, or bytes that do not decode), carried
/// inside the `io::Error` so the net thread can count it and penalise the sender.
#[derive(Debug, thiserror::Error)]
#[error("frame refused ({}): {detail}", reason.label())]
pub(crate) struct FrameRefused {
    pub reason: Reason,
    pub detail: String,
}

fn refused(reason: Reason, detail: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, FrameRefused { reason, detail })
}

/// The refusal inside a failed inbound stream, if the codec refused its frame.
pub(crate) fn frame_refusal(e: &io::Error) -> Option<Reason> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<FrameRefused>())
        .map(|f| f.reason)
}

pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new("/platform/rpc/1");

#[derive(Clone, Debug)]
pub(crate) struct RpcCodec {
    pub max_request: usize,
    pub max_response: usize,
}

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, limit: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > limit {
        return Err(refused(
            Reason::Oversized,
            format!("frame of {len} bytes exceeds {limit}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    bytes: &[u8],
    limit: usize,
) -> io::Result<()> {
    if bytes.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {} bytes exceeds {limit}", bytes.len()),
        ));
    }
    io.write_all(&(bytes.len() as u32).to_le_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

fn invalid(e: crate::wire::WireError) -> io::Error {
    refused(Reason::Malformed, e.to_string())
}

impl libp2p::request_response::Codec for RpcCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Request> {
        let frame = read_frame(io, self.max_request).await?;
        Request::decode(&frame).map_err(invalid)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Response> {
        let frame = read_frame(io, self.max_response).await?;
        Response::decode(&frame).map_err(invalid)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> io::Result<()> {
        write_frame(io, &req.encode(), self.max_request).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()> {
        write_frame(io, &res.encode(), self.max_response).await
    }
}

#[cfg(test)]
mod tests {
    use futures::io::Cursor;
    use libp2p::request_response::Codec as _;

    use super::*;

    fn read(bytes: Vec<u8>) -> io::Result<Request> {
        let mut codec = RpcCodec {
            max_request: 64,
            max_response: 64,
        };
        futures::executor::block_on(codec.read_request(&PROTOCOL, &mut Cursor::new(bytes)))
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn refused_frames_carry_their_reason() {
        let long = read((1000u32).to_le_bytes().to_vec()).unwrap_err();
        assert_eq!(frame_refusal(&long), Some(Reason::Oversized));
        let unknown_kind = read(frame(&[1, 99, 0])).unwrap_err();
        assert_eq!(frame_refusal(&unknown_kind), Some(Reason::Malformed));
        let unknown_version = read(frame(&[9, 1])).unwrap_err();
        assert_eq!(frame_refusal(&unknown_version), Some(Reason::Malformed));
        // A stream that ends early is a transport failure, not a refusal.
        let cut = read(vec![5, 0]).unwrap_err();
        assert_eq!(frame_refusal(&cut), None);
        let mut blob = vec![1, 2];
        blob.extend_from_slice(&[7; 32]);
        assert_eq!(read(frame(&blob)).unwrap(), Request::Blob([7; 32]));
    }
}
