//! The KMS the tests talk to, a moto server the tests run themselves (to kill it), and a small
//! HTTP proxy of the tests' own that answers chosen calls with real KMS error responses, or lets
//! them through and loses the answer.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ssekit_hsm::KmsConfig;

/// The KMS endpoint under test: `SSEKIT_KMS_ENDPOINT` (scripts/test.sh starts moto and sets it).
pub fn endpoint() -> String {
    std::env::var("SSEKIT_KMS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "the KMS tests need a KMS endpoint: run scripts/test.sh (it starts moto on 127.0.0.1), or set \
             SSEKIT_KMS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    })
}

/// A client config for `endpoint` with short backoffs, so fault tests run fast.
pub fn config(endpoint: &str) -> KmsConfig {
    KmsConfig {
        endpoint: Some(endpoint.to_owned()),
        max_attempts: 4,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        attempt_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        ..KmsConfig::from_env()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(addr: SocketAddr) {
    let t0 = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "nothing listens on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A moto server of this test's own, on a port of its own, from `SSEKIT_MOTO_SERVER`.
pub struct Moto {
    child: Option<Child>,
    pub port: u16,
}

impl Moto {
    pub fn spawn() -> Moto {
        let mut m = Moto {
            child: None,
            port: free_port(),
        };
        m.start();
        m
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port.
    pub fn start(&mut self) {
        let bin = std::env::var("SSEKIT_MOTO_SERVER").unwrap_or_else(|_| {
            panic!(
                "this test kills and restarts a KMS server: set SSEKIT_MOTO_SERVER to moto's `moto_server` \
                 (scripts/test.sh installs it in .venv and sets it)"
            )
        });
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        self.child = Some(child);
        wait_listening(([127, 0, 0, 1], self.port).into());
    }

    /// Kills it (SIGKILL: no goodbye) and waits until the port is closed.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Rule {
    target: String,
    /// The KMS error to answer with; `None`: forward the call, then cut the connection unanswered.
    code: Option<String>,
    left: u64,
    /// Once this rule has fired, every later call gets this KMS error.
    then: Option<String>,
}

#[derive(Default)]
struct Shared {
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<HashMap<String, u64>>,
    // Bumped by `down`: connections of an older generation are dropped.
    generation: AtomicU64,
    down: AtomicBool,
}

/// An HTTP/1.1 proxy on 127.0.0.1 in front of a KMS endpoint (`http://` only). Counts requests by
/// KMS call (`X-Amz-Target`), answers the calls it is told to with KMS's JSON error responses, and
/// can go down (connections refused, open ones cut) and come back on the same port.
pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    listener: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    pub fn start(upstream: &str) -> Proxy {
        let hostport = upstream
            .strip_prefix("http://")
            .expect("the proxy forwards plain http")
            .trim_end_matches('/');
        let upstream: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(hostport)
            .unwrap()
            .next()
            .unwrap();
        let mut p = Proxy {
            addr: ([127, 0, 0, 1], free_port()).into(),
            upstream,
            shared: Arc::default(),
            listener: None,
        };
        p.up();
        p
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next `times` calls to `target` (e.g. `Decrypt`, or `*` for any) get the KMS error `code`.
    pub fn inject(&self, target: &str, code: &str, times: u64) {
        self.shared.rules.lock().unwrap().push(Rule {
            target: target.to_owned(),
            code: Some(code.to_owned()),
            left: times,
            then: None,
        });
    }

    /// The next `times` calls to `target` reach the KMS, which carries them out, but the answer is
    /// lost: the proxy cuts the connection instead of sending it (a reset after the request went
    /// out, as the client sees it).
    pub fn lose_answer(&self, target: &str, times: u64) {
        self.shared.rules.lock().unwrap().push(Rule {
            target: target.to_owned(),
            code: None,
            left: times,
            then: None,
        });
    }

    /// As [`Proxy::lose_answer`] for the next call to `target`, and from then on every call gets
    /// the KMS error `code` (the service fails right after carrying the call out).
    pub fn lose_answer_then_fail(&self, target: &str, code: &str) {
        self.shared.rules.lock().unwrap().push(Rule {
            target: target.to_owned(),
            code: None,
            left: 1,
            then: Some(code.to_owned()),
        });
    }

    pub fn clear(&self) {
        self.shared.rules.lock().unwrap().clear();
    }

    /// Requests seen for `target` so far (answered or not).
    pub fn seen(&self, target: &str) -> u64 {
        self.shared
            .seen
            .lock()
            .unwrap()
            .get(target)
            .copied()
            .unwrap_or(0)
    }

    pub fn down(&mut self) {
        self.shared.down.store(true, Ordering::SeqCst);
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(t) = self.listener.take() {
            t.join().unwrap();
        }
    }

    pub fn up(&mut self) {
        self.shared.down.store(false, Ordering::SeqCst);
        // While the proxy was down, its port was free for the system to hand out as the local
        // port of some other test's connection: wait for it to come back rather than fail.
        let deadline = Instant::now() + Duration::from_secs(20);
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("the proxy cannot listen on {} again: {e}", self.addr),
            }
        };
        listener.set_nonblocking(true).unwrap();
        let (shared, upstream) = (self.shared.clone(), self.upstream);
        self.listener = Some(std::thread::spawn(move || {
            while !shared.down.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let shared = shared.clone();
                        let generation = shared.generation.load(Ordering::SeqCst);
                        std::thread::spawn(move || serve(conn, upstream, &shared, generation));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        }));
        wait_listening(self.addr);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down();
    }
}

/// One request off `r`: head lines and body; `None` at a clean end of the connection.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<(Vec<String>, Vec<u8>)> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let len = header(&lines, "content-length").map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((lines, body))
}

fn header<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn serve(conn: TcpStream, upstream: SocketAddr, shared: &Shared, generation: u64) {
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    while let Some((head, body)) = read_request(&mut reader) {
        if shared.generation.load(Ordering::SeqCst) != generation {
            return; // went down meanwhile: cut the connection without an answer
        }
        let target = header(&head, "x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("")
            .to_owned();
        *shared
            .seen
            .lock()
            .unwrap()
            .entry(target.clone())
            .or_default() += 1;
        let injected = {
            let mut rules = shared.rules.lock().unwrap();
            let fired = rules
                .iter_mut()
                .find(|r| r.left > 0 && (r.target == target || r.target == "*"))
                .map(|r| {
                    r.left -= 1;
                    (r.code.clone(), r.then.take())
                });
            fired.map(|(code, then)| {
                if let Some(then) = then {
                    rules.insert(
                        0,
                        Rule {
                            target: "*".into(),
                            code: Some(then),
                            left: u64::MAX,
                            then: None,
                        },
                    );
                }
                code
            })
        };
        let answer = match injected {
            Some(None) => {
                forward(upstream, &head, &body);
                return; // carried out upstream; the client never hears of it
            }
            Some(Some(code)) => {
                let body =
                    format!(r#"{{"__type":"{code}","message":"injected by the test proxy"}}"#);
                // KMS's status codes: 500 for its internal errors, 503 for a dependency's timeout.
                let status = match code.as_str() {
                    "KMSInternalException" => "500 Internal Server Error",
                    "DependencyTimeoutException" => "503 Service Unavailable",
                    _ => "400 Bad Request",
                };
                format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\n\
                     x-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\n\
                     Content-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            }
            None => match forward(upstream, &head, &body) {
                Some(a) => a,
                None => return,
            },
        };
        if conn.write_all(&answer).is_err() {
            return;
        }
    }
}

/// Sends one request upstream on a connection of its own and reads the whole answer.
fn forward(upstream: SocketAddr, head: &[String], body: &[u8]) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).ok()?;
    let mut req = Vec::new();
    for l in head {
        let name = l
            .split_once(':')
            .map(|(k, _)| k.trim().to_ascii_lowercase());
        if name.as_deref() != Some("connection") {
            req.extend_from_slice(l.as_bytes());
            req.extend_from_slice(b"\r\n");
        }
    }
    req.extend_from_slice(b"Connection: close\r\n\r\n");
    req.extend_from_slice(body);
    up.write_all(&req).ok()?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).ok()?;
    // Keep the client's connection open: drop upstream's `Connection: close` and frame the body
    // by its length.
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let body = &answer[end + 4..];
    let mut out = Vec::new();
    for l in String::from_utf8_lossy(&answer[..end]).split("\r\n") {
        let l_lower = l.to_ascii_lowercase();
        if !l_lower.starts_with("connection:") && !l_lower.starts_with("content-length:") {
            out.extend_from_slice(l.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    Some(out)
}
