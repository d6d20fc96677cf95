#!/usr/bin/env python3
"""The dashboard in a real browser: Debian's headless Chromium against a
real lrtune-server (TLS, tokens, --dashboard-listen) and lrtune-worker.

  LRTUNE_SERVER_BIN=... LRTUNE_WORKER_BIN=... LRTUNE_CLI_BIN=... \\
      python3 tests/dashboard_browser_test.py

Checks, each printed:
  - a range test submitted before any worker runs is watched live by the
    page: every point the worker reports is drawn, each within 2 s of the
    coordinator storing it (the page stamps the draw; same machine's clock);
    then the recommendation, the bounds band and the PyTorch snippets show;
  - the page takes a screenshot (DASHBOARD_SCREENSHOT, default in the temp
    directory; docs/dashboard.png is a copy of one);
  - a request without a token gets 401, a worker's token 403, over TLS
    with the gRPC listener's certificate;
  - another client's token sees none of the jobs, in the page and the API;
    an admin's sees them all;
  - the page's cancel button cancels a running job;
  - `lrtune range-test --ui` prints a URL whose page shows its curve, and
    keeps serving until Ctrl-C.

Chromium is driven over the DevTools protocol on a pipe
(--remote-debugging-pipe: fds 3 and 4), with the standard library only.
Exit 77 (a skip for ctest) when there is no chromium, 1 on a failure.
"""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

SERVER = os.environ.get("LRTUNE_SERVER_BIN", "build/server/lrtune-server")
WORKER = os.environ.get("LRTUNE_WORKER_BIN", "build/worker/lrtune-worker")
CLI = os.environ.get("LRTUNE_CLI_BIN", "build/client/lrtune")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

TOKENS = {
    "alice": ("client", "alice-token-0123456789abcdef"),
    "bob": ("client", "bob-token-0123456789abcdef"),
    "ops": ("admin", "ops-token-0123456789abcdef"),
    "w1": ("worker", "worker-token-0123456789abcdef"),
}

failures = []


def check(name, ok, detail=""):
    print(("ok      " if ok else "FAILED  ") + name +
          ("" if ok or not detail else ": " + str(detail)), flush=True)
    if not ok:
        failures.append(name)
    return ok


def wait_for(predicate, timeout, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


class Browser:
    """Headless Chromium and one page, over the DevTools protocol on a pipe:
    JSON messages separated by NUL bytes, fd 3 in, fd 4 out."""

    def __init__(self, profile, log):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-quic", "--no-first-run",
                 "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--user-data-dir=" + profile, "--remote-debugging-pipe",
                 "--window-size=1280,1500", "about:blank"]
        # bash (dash takes no fd above 9) moves the pipe ends to fds 3 and 4,
        # where Chromium expects them.
        self.proc = subprocess.Popen(
            ["bash", "-c", 'exec 3<&%d 4>&%d %d<&- %d>&-; exec "$0" "$@"' % (
                to_chrome_r, from_chrome_w, to_chrome_r, from_chrome_w),
             CHROMIUM] + flags,
            pass_fds=(to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL, stderr=log)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next_id = 0
        self._replies = {}
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", url="about:blank")
        self.session = self.call("Target.attachToTarget",
                                 targetId=target["targetId"],
                                 flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)
        # The server's certificate is checked by this test's own client;
        # the browser is told to accept it.
        self.call("Security.setIgnoreCertificateErrors", ignore=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True,
                  width=1280, height=1220, deviceScaleFactor=1, mobile=False)

    def _read(self):
        buf = b""
        while True:
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._replies[msg["id"]] = msg
                        self._cond.notify_all()

    def call(self, method, session=False, timeout=30, **params):
        with self._cond:
            self._next_id += 1
            mid = self._next_id
        msg = {"id": mid, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._replies, timeout):
                raise RuntimeError("no answer to " + method)
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise RuntimeError("%s: %s" % (method, reply["error"]))
        return reply.get("result", {})

    def goto(self, url):
        # Through about:blank: a new fragment alone would not load the page
        # anew.
        for address in ("about:blank", url):
            self.call("Page.navigate", session=True, url=address)
            wait_for(lambda: self.eval("document.readyState") == "complete",
                     10)

    def eval(self, expression):
        try:
            result = self.call("Runtime.evaluate", session=True,
                               expression=expression, returnByValue=True,
                               awaitPromise=True)
        except RuntimeError:  # between documents
            return None
        if "exceptionDetails" in result:
            return None
        return result.get("result", {}).get("value")

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", session=True,
                         format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:  # it may be gone already
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """The dashboard's API over TLS, verifying the server's certificate."""

    def __init__(self, port, ca):
        self.port = port
        self.context = ssl.create_default_context(cafile=ca)

    def request(self, method, path, token=None, headers=None):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port,
                                           context=self.context, timeout=30)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        conn.request(method, path, headers=h)
        res = conn.getresponse()
        body = res.read()
        conn.close()
        return res.status, body

    def json(self, path, token):
        status, body = self.request("GET", path, token)
        return status, (json.loads(body) if body else None)

    def events(self, job_id, token):
        """The kinds of a finished job's events, in order, from its stream
        (a `points` frame counts as one "point" per point it holds)."""
        status, body = self.request("GET", "/api/jobs/%s/events" % job_id,
                                    token)
        kinds = []
        for frame in body.decode().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in frame.split("\n")
                          if ": " in line and not line.startswith(":"))
            if fields.get("event") == "points":
                kinds += ["point"] * len(json.loads(fields["data"])["points"])
            elif "event" in fields:
                kinds.append(fields["event"])
        return status, kinds


def page_stats(browser):
    return browser.eval("JSON.stringify(window.lrtuneDashboard &&"
                        " window.lrtuneDashboard.stats)")


def stats_of(browser):
    raw = page_stats(browser)
    return json.loads(raw) if raw else {}


def main():
    if CHROMIUM is None:
        print("SKIP: no chromium (scripts/setup.sh installs Debian's)")
        return 77
    tmp = tempfile.mkdtemp(prefix="dashboard_browser_")
    procs = []
    try:
        return run(tmp, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)


def make_certificate(tmp):
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
         "1", "-subj", "/CN=lrtune", "-addext",
         "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", os.path.join(tmp, "server.key"),
         "-out", os.path.join(tmp, "server.pem")],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(tmp, procs):
    make_certificate(tmp)
    cert = os.path.join(tmp, "server.pem")
    with open(os.path.join(tmp, "tokens"), "w") as f:
        for name, (role, token) in TOKENS.items():
            f.write("%s %s %s\n" % (role, name, token))
    os.chmod(os.path.join(tmp, "tokens"), 0o600)
    for name, (_, token) in TOKENS.items():
        with open(os.path.join(tmp, name + ".tok"), "w") as f:
            f.write(token + "\n")

    grpc_port, http_port = free_port(), free_port()
    server_log = open(os.path.join(tmp, "server.log"), "w")
    procs.append(subprocess.Popen(
        [SERVER, "--listen", "127.0.0.1:%d" % grpc_port, "--db",
         os.path.join(tmp, "jobs.db"), "--tls-cert", cert, "--tls-key",
         os.path.join(tmp, "server.key"), "--tokens-file",
         os.path.join(tmp, "tokens"), "--dashboard-listen",
         "127.0.0.1:%d" % http_port], stderr=server_log))
    wait_for(lambda: "listening" in open(server_log.name).read(), 10)
    check("the server serves the dashboard over TLS",
          "dashboard on https://127.0.0.1:%d/" % http_port
          in open(server_log.name).read(), open(server_log.name).read())
    api = Api(http_port, cert)
    remote = ["--server", "127.0.0.1:%d" % grpc_port, "--tls-ca", cert]

    def submit(who, spec):
        path = os.path.join(tmp, "spec-%d.json" % time.time_ns())
        with open(path, "w") as f:
            json.dump(spec, f)
        out = subprocess.run(
            [CLI, "submit", "--spec", path, "--detach", "--token-file",
             os.path.join(tmp, who + ".tok")] + remote,
            capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().split()[0]

    # --- 401 and 403 over TLS ---
    status, body = api.request("GET", "/api/jobs")
    check("no token: 401", status == 401, (status, body))
    status, body = api.request("GET", "/api/jobs", TOKENS["w1"][1])
    check("a worker's token: 403", status == 403, (status, body))
    status, _ = api.request("GET", "/api/jobs", "not-a-token-0123456789")
    check("an unknown token: 401", status == 401, status)

    # --- a range test watched live ---
    range_spec = {"range_test": {
        "run": {"data": {"name": "fashion-mnist"},
                "model": {"kind": "mlp", "hidden": [64]},
                "device": {"device": "cpu", "threads": 1}},
        "range_test": {"steps": 400, "seeds": [0, 1]}}}
    job = submit("alice", range_spec)
    browser = Browser(os.path.join(tmp, "profile"),
                      open(os.path.join(tmp, "chromium.log"), "w"))
    try:
        base = "https://127.0.0.1:%d/" % http_port
        browser.goto(base + "#/jobs/%s?token=%s" % (job, TOKENS["alice"][1]))
        connected = wait_for(lambda: stats_of(browser).get("connected"), 20)
        check("the page opens the job's event stream", connected,
              page_stats(browser))
        check("the token left the address bar",
              "token" not in (browser.eval("location.href") or "token"))
        check("the token is in sessionStorage",
              browser.eval("sessionStorage.getItem('lrtune.token')") ==
              TOKENS["alice"][1])
        # The worker starts only now: every point arrives live.
        worker_log = open(os.path.join(tmp, "worker.log"), "w")
        procs.append(subprocess.Popen(
            [WORKER, "--server", "127.0.0.1:%d" % grpc_port, "--tls-ca", cert,
             "--token-file", os.path.join(tmp, "w1.tok"), "--threads", "1"],
            stderr=worker_log))
        ended = wait_for(lambda: stats_of(browser).get("terminal"), 180, 0.2)
        check("the page saw the job end", ended, page_stats(browser))
        # The page draws at most every 50 ms: the last draw follows.
        wait_for(lambda: (lambda st: st.get("pointsDrawn") ==
                          st.get("pointsReceived"))(stats_of(browser)), 5)
        stats = stats_of(browser)
        status, kinds = api.events(job, TOKENS["alice"][1])
        points = kinds.count("point")
        check("the stream over TLS has the job's events", status == 200 and
              points > 100 and kinds[0] == "accepted" and
              kinds[-1] == "state_changed", (status, points, kinds[:3]))
        check("the page received every point once",
              stats.get("pointsReceived") == points,
              (stats.get("pointsReceived"), points))
        check("the page drew every point", stats.get("pointsDrawn") == points,
              (stats.get("pointsDrawn"), points))
        lags = sorted(stats.get("lagsMs") or [0])
        p50 = lags[len(lags) // 2]
        print("        %d points drawn, store-to-drawn lag p50 %d ms, max %d ms"
              % (len(lags), p50, stats.get("maxLagMs", -1)))
        check("each point was drawn within 2 s of the coordinator storing it",
              0 <= stats.get("maxLagMs", 1e9) < 2000, stats.get("maxLagMs"))
        check("the chart has raw and smoothed curves for both seeds",
              browser.eval("Chart.getChart('curve').data.datasets"
                           ".filter(d => d.data.length > 0).length") == 4)
        # Each seed's analysis replaced its streamed EMA with the curve its
        # bounds were read from (Recommendation.position): up to the
        # divergence, so never longer than the raw curve.
        check("both seeds' smoothed lines are now the analysis's curves",
              wait_for(lambda: stats_of(browser).get("positionCurves") == 2, 5),
              page_stats(browser))
        check("an analysis's curve ends where its points were used",
              browser.eval(
                  "(() => { const d = Chart.getChart('curve').data.datasets;"
                  " return d[1].data.length > 10 &&"
                  " d[1].data.length <= d[0].data.length; })()"))
        check("the chart's LR axis is logarithmic",
              browser.eval("Chart.getChart('curve').options.scales.x.type")
              == "logarithmic")
        wait_for(lambda: browser.eval(
            "!!document.getElementById('snippet-one-cycle')"), 10)
        check("the bounds band and the suggestions are on the chart",
              browser.eval("(() => { const m = Chart.getChart('curve').$lrtune;"
                           " return m.maxLr > m.minLr && m.minLr > 0 &&"
                           " m.suggestions.length >= 2; })()"))
        check("the recommendation shows",
              "min_lr" in (browser.eval(
                  "document.getElementById('recommendation').innerText")
                  or ""))
        snippet = browser.eval(
            "document.getElementById('snippet-one-cycle').innerText") or ""
        status, body = api.json("/api/jobs/" + job, TOKENS["alice"][1])
        max_lr = body["job"]["range_test_result"]["recommendation"]["one_cycle"]["max_lr"]
        check("the OneCycleLR snippet holds the recommended max_lr",
              "OneCycleLR(" in snippet and ("max_lr=%r" % max_lr) in snippet,
              (max_lr, snippet[:200]))
        check("the CyclicLR and lrtune.torch snippets show",
              "CyclicLR(" in (browser.eval("document.getElementById("
                                           "'snippet-cyclic').innerText") or "")
              and "lrtune.torch.scheduler(" in (browser.eval(
                  "document.getElementById('snippet-lrtune').innerText") or ""))
        shot = os.environ.get("DASHBOARD_SCREENSHOT",
                              os.path.join(tmp, "dashboard.png"))
        browser.screenshot(shot)
        with open(shot, "rb") as f:
            png = f.read()
        check("the page took a screenshot (%s)" % shot,
              png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 30000, len(png))

        # --- owners ---
        other = submit("alice", range_spec)  # queued behind nothing: runs
        browser.goto(base + "#/?token=" + TOKENS["bob"][1])
        listed = wait_for(lambda: browser.eval(
            "(document.getElementById('jobs-count') || {}).textContent"), 10)
        check("bob's job list is empty",
              listed == "0 shown" and browser.eval(
                  "document.querySelectorAll('#jobs tbody tr').length") == 0,
              listed)
        browser.goto(base + "#/jobs/" + job)
        gone = wait_for(lambda: "No such job" in (browser.eval(
            "document.getElementById('main').innerText") or ""), 10)
        check("bob's page of alice's job says there is none", gone)
        status, body = api.json("/api/jobs", TOKENS["bob"][1])
        check("bob's API list is empty", status == 200 and
              not body.get("jobs"), body)
        for path in ["/api/jobs/" + job, "/api/jobs/%s/events" % job]:
            status, _ = api.request("GET", path, TOKENS["bob"][1])
            check("bob gets 404 for " + path.replace(job, "JOB"), status == 404,
                  status)
        status, _ = api.request("POST", "/api/jobs/%s/cancel" % other,
                                TOKENS["bob"][1])
        check("bob cannot cancel alice's job", status == 404, status)
        browser.goto(base + "#/?token=" + TOKENS["ops"][1])
        rows = wait_for(lambda: browser.eval(
            "[...document.querySelectorAll('#jobs tbody tr')]"
            ".map(r => r.innerText).join('\\n')"), 10) or ""
        check("an admin's list holds alice's jobs with their owner",
              job in rows and other in rows and "alice" in rows, rows[:300])

        # --- cancel from the page ---
        long_spec = json.loads(json.dumps(range_spec))
        long_spec["range_test"]["range_test"] = {"steps": 20000, "seeds": [0]}
        long_spec["range_test"]["run"]["data"] = {"name": "spirals"}
        victim = submit("alice", long_spec)
        browser.goto(base + "#/jobs/%s?token=%s" % (victim,
                                                     TOKENS["alice"][1]))
        running = wait_for(lambda: (stats_of(browser).get("pointsReceived")
                                    or 0) > 0, 120, 0.2)
        check("the long job streams before it is cancelled", running)
        browser.eval("document.getElementById('cancel').click()")
        browser.eval("document.getElementById('cancel').click()")
        cancelled = wait_for(lambda: api.json(
            "/api/jobs/" + victim, TOKENS["alice"][1])[1]["job"]["state"]
            == "JOB_STATE_CANCELLED", 10)
        check("the cancel button cancelled the job", cancelled)
        check("the page shows it cancelled",
              wait_for(lambda: "cancelled" in (browser.eval(
                  "document.querySelector('.status-line .badge').innerText")
                  or ""), 10))
    finally:
        browser.close()

    # --- embedded: lrtune range-test --ui ---
    env = dict(os.environ, XDG_DATA_HOME=os.path.join(tmp, "xdg"),
               XDG_RUNTIME_DIR=tmp)
    env.pop("LRTUNE_SERVER", None)
    err_path = os.path.join(tmp, "ui.err")
    ui = subprocess.Popen(
        [CLI, "range-test", "--ui", "--dataset", "iris", "--steps", "200",
         "--threads", "1", "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=open(err_path, "w"), env=env)
    procs.append(ui)
    url = wait_for(lambda: re.search(r"dashboard at (http://127\.0\.0\.1:\d+"
                                     r"/#/jobs/\S+\?token=\w+)",
                                     open(err_path).read()), 60)
    check("lrtune range-test --ui prints the dashboard's URL", url,
          open(err_path).read())
    if url:
        url = url.group(1)
        port = int(re.search(r":(\d+)/", url).group(1))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/jobs")
        check("the embedded dashboard wants its token",
              conn.getresponse().status == 401)
        conn.close()
        browser = Browser(os.path.join(tmp, "profile2"),
                          open(os.path.join(tmp, "chromium2.log"), "w"))
        try:
            browser.goto(url)
            done = wait_for(lambda: stats_of(browser).get("terminal"), 60,
                            0.2)
            # The page draws at most every 50 ms: the last draw follows.
            wait_for(lambda: (lambda st: st.get("pointsDrawn") ==
                              st.get("pointsReceived"))(stats_of(browser)), 5)
            stats = stats_of(browser)
            check("the embedded page shows the test's curve to its end",
                  done and stats.get("pointsDrawn", 0) > 0 and
                  stats["pointsDrawn"] == stats["pointsReceived"], stats)
        finally:
            browser.close()
        still = wait_for(lambda: "stays up" in open(err_path).read(), 30)
        check("the dashboard stays up after the test", still and
              ui.poll() is None)
    ui.send_signal(signal.SIGINT)
    try:
        rc = ui.wait(timeout=20)
    except subprocess.TimeoutExpired:
        ui.kill()
        rc = None
    check("Ctrl-C ends lrtune range-test --ui with exit 0", rc == 0, rc)
    out = ui.stdout.read().decode()
    check("it printed the recommendation", "CLR bounds" in out, out[:300])

    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
