"""Unit tests of the Python miner client: byte layouts pinned against vectors the Rust side
also checks (net/src/wire/tests.rs), signatures checked with the real bittensor-wallet
Keypair, and the HTTP answers and the command line's behaviour against a real local HTTP
server. Run with ``python -m unittest discover -s clients/python/tests``."""

import contextlib
import http.server
import io
import json
import os
import struct
import tempfile
import threading
import unittest

from bittensor_wallet import Keypair

import platform_miner
from platform_miner.__main__ import main

SEED = "0x" + "5a" * 32
# The same inputs in net/src/wire/tests.rs (`python_client_vectors`): the submission payload
# and the bytes a version-2 envelope signs (everything before its signature).
# version 1 | challenge 3 | epoch 11 | length 13 | body
PAYLOAD_HEX = "01" "03000000" "0b00000000000000" "0d000000" "766563746f7220626f64792121"
# version 2 | topic 1 | author (the seed's public key) | issued_at_ms | length 30 | payload
SIGNED_HEX = (
    "02" "01" "9eda665dd261ad54955ad987dbb02c116100953d1f841b81a54912f01f3bc057"
    "0068e5cf8b010000" "1e000000" + PAYLOAD_HEX
)
ISSUED_AT_MS = 1_700_000_000_000


def keypair():
    return Keypair.create_from_seed(SEED)


class Layouts(unittest.TestCase):
    def test_submission_payload_layout(self):
        p = platform_miner.submission_payload(3, 11, b"vector body!!")
        self.assertEqual(p.hex(), PAYLOAD_HEX)
        self.assertEqual(p[0], 1)
        self.assertEqual(struct.unpack_from("<IQI", p, 1), (3, 11, 13))
        self.assertEqual(p[17:], b"vector body!!")

    def test_envelope_is_version_2_on_the_submissions_topic_and_verifies(self):
        kp = keypair()
        payload = platform_miner.submission_payload(3, 11, b"vector body!!")
        env = platform_miner.envelope(kp, payload, ISSUED_AT_MS)
        self.assertEqual(env[0], 2, "version")
        self.assertEqual(env[1], 1, "submissions topic")
        self.assertEqual(env[2:34], bytes(kp.public_key))
        self.assertEqual(struct.unpack_from("<QI", env, 34), (ISSUED_AT_MS, len(payload)))
        self.assertEqual(env[46:-64], payload)
        self.assertEqual(len(env), 46 + len(payload) + 64)
        signed, signature = env[:-64], env[-64:]
        self.assertEqual(signed.hex(), SIGNED_HEX)
        self.assertTrue(kp.verify(platform_miner.DOMAIN + signed, signature))
        self.assertFalse(kp.verify(signed, signature), "the domain is part of what is signed")
        tampered = bytearray(signed)
        tampered[-1] ^= 1
        self.assertFalse(kp.verify(platform_miner.DOMAIN + bytes(tampered), signature))

    def test_envelope_refuses_a_key_that_is_not_sr25519_sized(self):
        class Odd:
            public_key = b"\x01" * 33

            def sign(self, _m):
                raise AssertionError("never signs")

        with self.assertRaises(ValueError):
            platform_miner.envelope(Odd(), b"x", 1)


class Answers(http.server.BaseHTTPRequestHandler):
    """Answers POST /submission as the test sets: (status, body bytes)."""

    answer = (200, b"{}")
    received = []

    def do_POST(self):  # noqa: N802 (the standard library's name)
        n = int(self.headers.get("Content-Length", "0"))
        Answers.received.append((self.path, self.headers.get("Content-Type"), self.rfile.read(n)))
        status, body = Answers.answer
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args):
        pass


class Http(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers)
        cls.url = f"http://127.0.0.1:{cls.server.server_address[1]}"
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def setUp(self):
        Answers.received.clear()

    def test_accepted_posts_the_raw_envelope(self):
        Answers.answer = (200, json.dumps({"accepted": "ab" * 32}).encode())
        answer = platform_miner.post(self.url + "/", b"\x02envelope")
        self.assertEqual(answer, {"accepted": "ab" * 32})
        self.assertEqual(Answers.received, [("/submission", "application/octet-stream", b"\x02envelope")])

    def test_refusals_come_back_as_their_reason(self):
        for status, reason in [(422, "inactive_challenge"), (429, "rate_limited"), (503, "busy"), (413, "oversized")]:
            Answers.answer = (status, json.dumps({"refused": reason}).encode())
            self.assertEqual(platform_miner.post(self.url, b"e"), {"refused": reason}, status)

    def test_an_answer_that_is_not_json_is_named_with_its_status(self):
        Answers.answer = (502, b"<html>bad gateway</html>")
        answer = platform_miner.post(self.url, b"e")
        self.assertTrue(answer["refused"].startswith("HTTP 502: "), answer)

    def hotkey_file(self, directory):
        kp = keypair()
        path = os.path.join(directory, "hotkey")
        with open(path, "w") as f:
            json.dump(
                {
                    "accountId": "0x" + bytes(kp.public_key).hex(),
                    "publicKey": "0x" + bytes(kp.public_key).hex(),
                    "secretPhrase": None,
                    "secretSeed": SEED,
                    "ss58Address": kp.ss58_address,
                },
                f,
            )
        return path

    def run_main(self, url, directory):
        payload = os.path.join(directory, "payload")
        with open(payload, "wb") as f:
            f.write(b"my answer")
        out, err = io.StringIO(), io.StringIO()
        argv = ["--to", url, "--hotkey-file", self.hotkey_file(directory), "--challenge", "7", "--epoch", "9", "--payload", payload]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        return code, out.getvalue(), err.getvalue()

    def test_the_command_line_prints_the_id_or_one_line_and_fails(self):
        with tempfile.TemporaryDirectory() as d:
            Answers.answer = (200, json.dumps({"accepted": "cd" * 32}).encode())
            code, out, err = self.run_main(self.url, d)
            self.assertEqual((code, out.strip(), err), (0, "cd" * 32, ""))
            env = Answers.received[-1][2]
            self.assertEqual(env[2:34], bytes(keypair().public_key), "signed by the file's hotkey")
            self.assertEqual(env[46:-64], platform_miner.submission_payload(7, 9, b"my answer"))

            Answers.answer = (422, b'{"refused":"unknown_author"}')
            code, out, err = self.run_main(self.url, d)
            self.assertEqual(code, 1)
            self.assertEqual(out, "")
            self.assertEqual(err.strip(), "platform-miner-py: the validator refused it: unknown_author")

    def test_an_unreachable_validator_is_one_line_not_a_traceback(self):
        with socket_closed_port() as port, tempfile.TemporaryDirectory() as d:
            code, out, err = self.run_main(f"http://127.0.0.1:{port}", d)
        self.assertEqual(code, 1)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertTrue(err.startswith("platform-miner-py: "), err)
        self.assertNotIn("Traceback", err)


@contextlib.contextmanager
def socket_closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    yield port


if __name__ == "__main__":
    unittest.main()
