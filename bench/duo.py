"""A mock Duo server for the benchmark: pam_duo.so (Debian's libpam-duo
1.11.3) logs in against it over HTTPS on loopback, answering a passcode.

What pam_duo 1.11.3 speaks (read from duo_unix's source at tag
duo_unix-1.11.3; Debian's patches touch only the build):
- lib/duo.c: POST /rest/v1/preauth.bson (user, hostname, failmode[, ipaddr]),
  then POST /rest/v1/auth.bson (user, factor=auto, auto=<what the user
  typed>, async, hostname, pushinfo[, ipaddr]); with async=1 (every PAM
  service but "sshd", pam_duo/pam_duo.c) it then polls
  GET /rest/v1/status.bson?txid=... until a result comes. Answers are BSON
  {stat: "OK", response: {...}} or {stat: "FAIL", code: int32, message};
  HTTP 401 means "Invalid ikey or skey" (duo_call).
- lib/https.c (https_send): every request carries
  "Authorization: Basic base64(ikey:hex(HMAC-SHA1(skey, canonical)))" where
  canonical is "METHOD\\nhost\\npath\\nparams", host without the port, the
  params "k=v" URL-encoded (RFC 3986 unreserved kept) and sorted; there is
  no Date header (and no date in what is signed). Requests are HTTP/1.1 over
  one kept-alive connection per login; the certificate is checked against
  `cafile` and its name against the host's DNS SAN or CN (IP SANs are not
  looked at), so our certificate names 127.0.0.1 as a DNS SAN too.
- The passcode prompt is the "prompt" string of the preauth answer, asked
  through the PAM conversation with PAM_PROMPT_ECHO_ON (pam_duo.c
  __duo_prompt); what comes back is looked up in "factors" and, if it is not
  a factor's key, sent as the passcode.

Python standard library only, plus the openssl command for a throwaway CA.
Run `python3 bench/duo.py selfcheck` as root to check it against the real
pam_duo.so through the bench's driver.
"""
import base64, hashlib, hmac, http.server, json, os, secrets, select, shutil, socket, ssl, struct, subprocess, sys, tempfile, threading, time
import urllib.parse
import collections

HOST = "127.0.0.1"
# As Duo's own preauth prompt reads, for a user with one phone.
PROMPT = ("Duo two-factor login for {user}\n\nEnter a passcode or select one of the following options:\n\n"
          " 1. Duo Push to XXX-XXX-2671\n\nPasscode or option (1-1): ")


def bson(doc):
    """BSON encoding of a dict of str, int (int32) and dict: all pam_duo reads."""
    out = b""
    for k, v in doc.items():
        key = k.encode() + b"\0"
        if isinstance(v, str):
            s = v.encode() + b"\0"
            out += b"\x02" + key + struct.pack("<i", len(s)) + s
        elif isinstance(v, bool) or not isinstance(v, (int, dict)):
            raise TypeError(f"bson: {type(v)}")
        elif isinstance(v, int):
            out += b"\x10" + key + struct.pack("<i", v)
        else:
            out += b"\x03" + key + bson(v)
    return struct.pack("<i", len(out) + 5) + out + b"\0"


def canonical(method, host, path, params):
    """What duo_unix 1.11.3 signs (lib/https.c https_send): Duo's servers
    sort the received "k=v" pairs themselves, so a client cannot choose the order."""
    return f"{method}\n{host.lower()}\n{path}\n" + "&".join(sorted(p for p in params.split("&") if p))


def sign(ikey, skey, method, host, path, params):
    """The Authorization header value for a request (as https_send makes it)."""
    mac = hmac.new(skey.encode(), canonical(method, host, path, params).encode(), hashlib.sha1).hexdigest()
    return "Basic " + base64.b64encode(f"{ikey}:{mac}".encode()).decode()


def make_pki(directory):
    """A throwaway CA and a server certificate for 127.0.0.1, ECDSA P-256 like
    the simulator's (src/pki.rs, rcgen's default). Returns (ca, cert, key) paths."""
    ca_key, ca = os.path.join(directory, "duo-ca.key"), os.path.join(directory, "duo-ca.pem")
    key, csr, cert = (os.path.join(directory, n) for n in ("duo-server.key", "duo-server.csr", "duo-server.pem"))
    ext = os.path.join(directory, "duo-server.ext")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)
    run("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=bench mock Duo CA")
    run("req", *ec, "-keyout", key, "-out", csr, "-subj", f"/CN={HOST}")
    with open(ext, "w") as f:
        # pam_duo matches the host against DNS names only; clients that follow
        # RFC 6125 look at the IP entry.
        f.write(f"subjectAltName=DNS:{HOST},IP:{HOST}\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
        "-extfile", ext, "-out", cert)
    for p in (ca_key, key):
        os.chmod(p, 0o600)
    return ca, cert, key


class DuoMock:
    """The server: one thread per connection, HTTPS, HTTP/1.1 keep-alive.

    Times are CLOCK_MONOTONIC nanoseconds (time.monotonic_ns), the clock any
    other process on the machine reads with clock_gettime(CLOCK_MONOTONIC),
    so they compare with a driver's own timestamps."""

    def __init__(self, directory, passcode, ikey=None, skey=None, users=None, tickets=0):
        self.dir = directory
        self.tickets = tickets
        self.passcode = passcode
        self.ikey = ikey or "DI" + secrets.token_hex(9).upper()
        self.skey = skey or secrets.token_hex(20)
        self.users = users  # None: every user may log in
        self.lock = threading.Lock()
        self.counts = dict.fromkeys(
            ("connections", "tls_handshakes", "requests", "preauths", "auth_calls", "verified_auths",
             "denied_auths", "allows", "status_calls", "bad_signatures", "busy_ns"), 0)
        # One record per connection, in accept order (see `serve`).
        self.conns = []
        self.txids = {}
        self.sock = None

    def start(self):
        self.cafile, cert, key = make_pki(self.dir)
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(cert, key)
        # No session tickets by default, as the simulator: a fresh process
        # never resumes. Note: pam_duo writes a request as many small TLS
        # records without TCP_NODELAY, so with no server packet after the
        # handshake to ACK its Finished, Nagle holds its first request record
        # until the server's delayed ACK (~40 ms on Linux); tickets=2 (what
        # OpenSSL servers send by default) carries that ACK at once.
        self.tls.num_tickets = self.tickets
        self.sock = socket.create_server((HOST, 0), backlog=256)
        self.port = self.sock.getsockname()[1]
        self.host = f"{HOST}:{self.port}"
        threading.Thread(target=self.accept_loop, daemon=True).start()
        return self

    def stop(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def stats(self):
        """A snapshot of the counters; busy_micros as the simulator's stats name it."""
        with self.lock:
            s = dict(self.counts)
        s["busy_micros"] = s["busy_ns"] // 1000
        return s

    def connections_since(self, n):
        """Records of the connections after the first n (n: a stats()['connections'])."""
        with self.lock:
            return [dict(c) for c in self.conns[n:]]

    def count(self, **kw):
        with self.lock:
            for k, v in kw.items():
                self.counts[k] += v

    def accept_loop(self):
        while True:
            try:
                raw, addr = self.sock.accept()
            except OSError:
                return
            accepted = time.monotonic_ns()
            threading.Thread(target=self.serve, args=(raw, addr, accepted), daemon=True).start()

    def serve(self, raw, addr, accepted):
        """One connection: accepted_ns (TCP handshake done), handshake_done_ns
        (TLS), first_byte_ns (the first request's first record readable), requests."""
        conn = {"accepted_ns": accepted, "handshake_done_ns": None, "first_byte_ns": None, "requests": 0}
        with self.lock:
            self.conns.append(conn)
            self.counts["connections"] += 1
        raw.settimeout(30)
        try:
            tls = self.tls.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            tls.do_handshake()
            conn["handshake_done_ns"] = time.monotonic_ns()
            self.count(tls_handshakes=1)
            if not tls.pending():
                select.select([tls], [], [], 30)
            conn["first_byte_ns"] = time.monotonic_ns()
            _Handler(tls, addr, self, conn)
        except (OSError, ssl.SSLError):
            pass
        finally:
            raw.close()

    # --- the API ---------------------------------------------------------

    def answer(self, method, path, params, headers):
        """(HTTP status, BSON document) for one request."""
        if headers.get("Host") != self.host:
            return 400, {"stat": "FAIL", "code": 40000, "message": "Host"}
        if not self.verified(method, path, params, headers.get("Authorization", "")):
            self.count(bad_signatures=1)
            return 401, {"stat": "FAIL", "code": 40101, "message": "Missing or invalid authorization"}
        args = dict(urllib.parse.parse_qsl(params, keep_blank_values=True))
        user = args.get("user", "")
        if method == "POST" and path == "/rest/v1/preauth.bson":
            self.count(preauths=1)
            if self.users is not None and user not in self.users:
                return 200, ok({"result": "enroll", "status": "Enroll at https://example.invalid/"})
            return 200, ok({"result": "auth", "status": "Account is active", "prompt": PROMPT.format(user=user),
                            "factors": {"default": "push1", "1": "push1"}})
        if method == "POST" and path == "/rest/v1/auth.bson":
            good = (args.get("factor") == "auto" and hmac.compare_digest(args.get("auto", ""), self.passcode)
                    and (self.users is None or user in self.users))
            self.count(auth_calls=1, verified_auths=int(good), denied_auths=int(not good))
            result = {"result": "allow", "status": "Success. Logging you in..."} if good else \
                {"result": "deny", "status": "Incorrect passcode. Please try again."}
            if args.get("async") == "1":
                txid = secrets.token_hex(16)
                with self.lock:
                    self.txids[txid] = result
                return 200, ok({"txid": txid})
            self.count(allows=int(good))
            return 200, ok(result)
        if method == "GET" and path == "/rest/v1/status.bson":
            self.count(status_calls=1)
            with self.lock:
                result = self.txids.pop(args.get("txid", ""), None)
            if result is None:
                return 400, {"stat": "FAIL", "code": 40002, "message": "Invalid txid"}
            self.count(allows=int(result["result"] == "allow"))
            return 200, ok(result)
        return 404, {"stat": "FAIL", "code": 40400, "message": "Not found"}

    def verified(self, method, path, params, authorization):
        if not authorization.startswith("Basic "):
            return False
        try:
            ikey, mac = base64.b64decode(authorization[6:], validate=True).decode().split(":", 1)
        except (ValueError, UnicodeDecodeError):
            return False
        want = hmac.new(self.skey.encode(), canonical(method, HOST, path, params).encode(), hashlib.sha1).hexdigest()
        return hmac.compare_digest(ikey, self.ikey) and hmac.compare_digest(mac, want)


def ok(response):
    return {"stat": "OK", "response": response}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, sock, addr, mock, conn):
        self.mock, self.conn = mock, conn
        super().__init__(sock, addr, None)

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.api()

    def do_POST(self):
        self.api()

    def api(self):
        started = time.monotonic_ns()
        path, _, query = self.path.partition("?")
        if self.command == "POST":
            params = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode("ascii", "replace")
        else:
            params = query
        status, doc = self.mock.answer(self.command, path, params, self.headers)
        body = bson(doc)
        head = (f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\nContent-Type: application/bson\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        # One write: a response is one TLS record, as a real server sends it.
        self.wfile.write(head + body)
        self.conn["requests"] += 1
        self.mock.count(requests=1, busy_ns=time.monotonic_ns() - started)


def write_config(directory, mock, name="duo", skey=None, cafile=None):
    """Writes NAME.conf for pam_duo (0600, as pam_duo insists: it refuses a file
    others may read) and returns the PAM line for a service using it.

    failmode=secure: on a config or connection error pam_duo then refuses
    instead of letting the login through (its default, "safe", returns
    PAM_SUCCESS). autopush=no: it asks (the preauth "prompt") instead of
    pushing. prompts=1: one passcode per login. pushinfo=no: nothing to send."""
    path = os.path.join(directory, name + ".conf")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"[duo]\nikey = {mock.ikey}\nskey = {skey or mock.skey}\nhost = {mock.host}\n"
                f"cafile = {cafile or mock.cafile}\nfailmode = secure\nautopush = no\nprompts = 1\n"
                "pushinfo = no\nhttps_timeout = 30\n")
    os.chmod(path, 0o600)
    return f"auth required pam_duo.so conf={path}"


# --- the hook bench/bench.py calls (see the docstring at its top) ---------

PASSCODE = "271828"
# The fields of bench.py's Scenario, so that this file needs nothing from it.
Scenario = collections.namedtuple("Scenario", "key name service mode args prepare server")


class _Server:
    """bench.py's server interface over a DuoMock."""

    def __init__(self, mock):
        self.mock = mock

    def stats(self):
        s = self.mock.stats()
        return {k: s[k] for k in ("connections", "tls_handshakes", "busy_micros")}

    def connections(self, since_ns):
        with self.mock.lock:
            conns = [dict(c) for c in self.mock.conns]
        # The mock times the handshake from accept(): no ClientHello peek.
        return [{"accepted_ns": c["accepted_ns"], "hello_ns": None,
                 "tls_done_ns": c["handshake_done_ns"], "first_byte_ns": c["first_byte_ns"],
                 "busy_micros": 0}
                for c in conns if c["accepted_ns"] >= since_ns and c["first_byte_ns"] is not None]

    def advance(self):
        pass

    def close(self):
        self.mock.stop()


class _Duo:
    """pam_duo.so against the mock, logging in as a PAM service named sshd
    (pam_duo's synchronous flow: preauth and auth, two requests)."""

    def __init__(self, b):
        self.mock = DuoMock(b.dir, passcode=PASSCODE).start()
        self.server = _Server(self.mock)
        b.service("sshd", write_config(b.dir, self.mock, "duo"))
        self.scenarios = [Scenario("duo", "D. pam_duo.so over HTTPS (mock Duo, passcode)", "sshd",
                                   "fixed", [PASSCODE], lambda: None, self.server)]
        self.callgrind = ("sshd", "root", "fixed", PASSCODE)

    def check(self, rows):
        """Every timed login (and the warm-up) was a verified allow at the
        mock: pam_duo answers PAM_SUCCESS on some config errors."""
        logins = sum(len(r) for r in rows.values())
        s = self.mock.stats()
        if s["allows"] < logins or s["denied_auths"] or s["bad_signatures"]:
            raise AssertionError(f"pam_duo logins not all verified at the mock: {logins} logins, {s}")

    def close(self):
        self.server.close()


def start(b):
    """The pam_duo scenario for bench.py, or None when pam_duo.so is missing."""
    if not any(os.path.exists(os.path.join(d, "pam_duo.so"))
               for d in ("/lib/x86_64-linux-gnu/security", "/usr/lib/x86_64-linux-gnu/security",
                         "/lib/security", "/usr/lib64/security")):
        return None
    return _Duo(b)


# --- self-check ----------------------------------------------------------

def driver():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for build in ("release", "debug"):
        p = os.path.join(root, "target", build, "examples", "pam_login_driver")
        if os.path.exists(p):
            return p
    sys.exit("build the driver first: cargo build --example pam_login_driver")


def selfcheck():
    assert os.geteuid() == 0, "run as root (pam_duo reads a root-only file)"
    d = tempfile.mkdtemp(prefix="duo-mock.", dir="/run")
    os.chmod(d, 0o700)
    confdir = os.path.join(d, "pam.d")
    os.mkdir(confdir)
    tickets = int(os.environ.get("DUO_MOCK_TICKETS", "0"))
    mock = DuoMock(d, passcode=f"{secrets.randbelow(10**6):06}", tickets=tickets).start()
    drv = driver()
    failures = []

    def service(name, line):
        with open(os.path.join(confdir, name), "w") as f:
            f.write(line + "\n")

    def login(svc, passcode):
        before = mock.stats()
        p = subprocess.run([drv, confdir, svc, "root", "answer", passcode], capture_output=True, text=True, timeout=60)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        after = mock.stats()
        delta = {k: after[k] - before[k] for k in after}
        conns = mock.connections_since(before["connections"])
        return r, delta, conns

    def check(what, cond, detail):
        print(("ok   " if cond else "FAIL ") + what + ("" if cond else f": {detail}"))
        if not cond:
            failures.append(what)

    try:
        # pam_duo asks synchronously only for the service named "sshd".
        service("sshd", write_config(d, mock, "good"))
        service("duo-async", write_config(d, mock, "good"))
        service("duo-badkey", write_config(d, mock, "badkey", skey=secrets.token_hex(20)))
        service("duo-badca", write_config(d, mock, "badca", cafile="/etc/ssl/certs/ca-certificates.crt"))

        r, s, conns = login("sshd", mock.passcode)
        check("right passcode (sync): PAM_SUCCESS and one verified auth at the mock",
              r["rc"] == 0 and s["verified_auths"] == 1 and s["allows"] == 1 and s["bad_signatures"] == 0, (r, s))
        check("one TCP connection, one TLS handshake, preauth + auth", s["connections"] == 1
              and s["tls_handshakes"] == 1 and s["requests"] == 2 and s["preauths"] == 1, s)
        c = conns[0] if conns else {}
        check("connection times recorded", all(c.get(k) for k in ("accepted_ns", "handshake_done_ns", "first_byte_ns"))
              and c["accepted_ns"] <= c["handshake_done_ns"] <= c["first_byte_ns"], c)
        if c.get("first_byte_ns"):
            print(f"     TCP accept -> TLS done {(c['handshake_done_ns'] - c['accepted_ns']) / 1e6:.2f} ms,"
                  f" -> first request byte {(c['first_byte_ns'] - c['handshake_done_ns']) / 1e6:.2f} ms;"
                  f" login {r['wall_us'] / 1000:.1f} ms wall, {r['cpu_us'] / 1000:.1f} ms CPU")

        r, s, _ = login("duo-async", mock.passcode)
        check("right passcode (async): PAM_SUCCESS after preauth, auth and status on one connection",
              r["rc"] == 0 and s["verified_auths"] == 1 and s["allows"] == 1 and s["status_calls"] == 1
              and s["requests"] == 3 and s["connections"] == 1, (r, s))

        wrong = f"{(int(mock.passcode) + 1) % 10**6:06}"
        r, s, _ = login("sshd", wrong)
        check("wrong passcode: refused, the mock denied it", r["rc"] != 0 and s["denied_auths"] == 1
              and s["verified_auths"] == 0 and s["allows"] == 0, (r, s))

        r, s, _ = login("duo-badkey", mock.passcode)
        check("wrong skey in pam_duo.conf: refused with 401 (signature checked)",
              r["rc"] != 0 and s["bad_signatures"] >= 1 and s["auth_calls"] == 0, (r, s))

        r, s, _ = login("duo-badca", mock.passcode)
        check("cafile without the mock's CA: refused before any request", r["rc"] != 0 and s["requests"] == 0, (r, s))

        # A request signed with another key, straight from here.
        ctx = ssl.create_default_context(cafile=mock.cafile)
        with socket.create_connection((HOST, mock.port)) as raw, ctx.wrap_socket(raw, server_hostname=HOST) as t:
            def ask(authz):
                body = "user=root"
                t.sendall((f"POST /rest/v1/preauth.bson HTTP/1.1\r\nHost: {mock.host}\r\nAuthorization: {authz}\r\n"
                           f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
                           + body).encode())
                return t.recv(65536).split(b" ", 2)[1]
            bad = ask(sign(mock.ikey, "not-the-skey", "POST", HOST, "/rest/v1/preauth.bson", "user=root"))
            good = ask(sign(mock.ikey, mock.skey, "POST", HOST, "/rest/v1/preauth.bson", "user=root"))
        check("bad signature: 401; the same request signed right: 200", bad == b"401" and good == b"200", (bad, good))
    finally:
        mock.stop()
        shutil.rmtree(d, ignore_errors=True)
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")
    print("selfcheck: all passed")


if __name__ == "__main__":
    if sys.argv[1:] == ["selfcheck"]:
        selfcheck()
    else:
        sys.exit("usage: python3 bench/duo.py selfcheck")
