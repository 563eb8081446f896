//! A TCP proxy on loopback that the test controls: it passes traffic, cuts
//! a connection in the middle of a request, or forwards the request and
//! loses the response (after the server committed). Faults are drawn from
//! a seeded RNG per connection, so a run is repeatable in what it injects.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// Counters of what the proxy did.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Connections passed through untouched.
    pub passed: AtomicU64,
    /// Connections cut mid-request.
    pub cut_requests: AtomicU64,
    /// Responses lost after the server answered.
    pub lost_responses: AtomicU64,
    /// Bytes client → server that reached the server.
    pub bytes_up: AtomicU64,
    /// Bytes server → client that reached the client.
    pub bytes_down: AtomicU64,
}

/// A weak link: bandwidth, latency and dropped connections.
#[derive(Debug, Clone, Copy)]
pub struct Shaping {
    /// Bytes per second in each direction.
    pub bytes_per_sec: u64,
    /// One-way delay added before each burst.
    pub one_way_delay: Duration,
}

/// A running proxy.
pub struct Proxy {
    /// `host:port` to connect to.
    pub addr: String,
    /// Percent of connections cut mid-request.
    pub cut_percent: Arc<AtomicU32>,
    /// Percent of connections whose response is lost.
    pub lose_percent: Arc<AtomicU32>,
    /// What happened.
    pub stats: Arc<ProxyStats>,
    /// Where traffic goes (`host:port`), changeable when the server restarts.
    pub target: Arc<Mutex<String>>,
    /// Link shaping, if any.
    pub shaping: Arc<Mutex<Option<Shaping>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Start a proxy to `target` with a seeded fault RNG.
    pub async fn start(target: &str, seed: u64) -> std::io::Result<Proxy> {
        // A backlog as the server's ([`gridsync_server::LISTEN_BACKLOG`]):
        // 400 phones connecting at one instant must not overflow the
        // stand-in for the network (tokio's bind listens with 128).
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(([127, 0, 0, 1], 0).into())?;
        let listener = socket.listen(gridsync_server::LISTEN_BACKLOG as u32)?;
        let addr = listener.local_addr()?.to_string();
        let cut = Arc::new(AtomicU32::new(0));
        let lose = Arc::new(AtomicU32::new(0));
        let stats = Arc::new(ProxyStats::default());
        let target = Arc::new(Mutex::new(target.to_owned()));
        let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
        let shaping: Arc<Mutex<Option<Shaping>>> = Arc::new(Mutex::new(None));
        let (c, l, s, t, sh) = (cut.clone(), lose.clone(), stats.clone(), target.clone(), shaping.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let roll: u32 = rng.lock().await.gen_range(0..100);
                let cut = c.load(Ordering::Relaxed);
                let lose = l.load(Ordering::Relaxed);
                let fault = if roll < cut {
                    Fault::CutRequest
                } else if roll < cut + lose {
                    Fault::LoseResponse
                } else {
                    Fault::None
                };
                let target = t.lock().await.clone();
                let shaping = *sh.lock().await;
                let cut_at: u64 = rng.lock().await.gen_range(200..20_000);
                let stats = s.clone();
                tokio::spawn(async move {
                    let _ = match shaping {
                        Some(sh) => shaped(client, &target, sh, fault, cut_at, &stats).await,
                        None => handle(client, &target, fault, &stats).await,
                    };
                });
            }
        });
        Ok(Proxy { addr, cut_percent: cut, lose_percent: lose, stats, target, shaping, task })
    }

    /// Base URL through the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shape the link (applies to new connections).
    pub async fn set_shaping(&self, s: Option<Shaping>) {
        *self.shaping.lock().await = s;
    }

    /// Set fault rates (percent of connections).
    pub fn set_faults(&self, cut: u32, lose: u32) {
        self.cut_percent.store(cut, Ordering::Relaxed);
        self.lose_percent.store(lose, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone, Copy)]
enum Fault {
    None,
    CutRequest,
    LoseResponse,
}

async fn handle(mut client: TcpStream, target: &str, fault: Fault, stats: &ProxyStats) -> std::io::Result<()> {
    let mut server = TcpStream::connect(target).await?;
    match fault {
        Fault::None => {
            stats.passed.fetch_add(1, Ordering::Relaxed);
            // Count as bytes pass, so long-lived connections are measured too.
            let (cr, cw) = client.split();
            let (sr, sw) = server.split();
            tokio::select! {
                r = counting_copy(cr, sw, &stats.bytes_up) => r?,
                r = counting_copy(sr, cw, &stats.bytes_down) => r?,
            }
        }
        Fault::CutRequest => {
            // Forward only part of the first chunk, then drop both sides.
            let mut buf = vec![0u8; 64 * 1024];
            let n = client.read(&mut buf).await?;
            server.write_all(&buf[..n / 2]).await?;
            stats.cut_requests.fetch_add(1, Ordering::Relaxed);
        }
        Fault::LoseResponse => {
            // Forward the whole request; when the server starts answering,
            // it has committed: drop the answer and the client connection.
            let (mut cr, _cw) = client.split();
            let (mut sr, mut sw) = server.split();
            let mut first = [0u8; 1];
            tokio::select! {
                _ = tokio::io::copy(&mut cr, &mut sw) => {}
                r = sr.read(&mut first) => { r?; }
            }
            stats.lost_responses.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Copy one direction at `rate` bytes/s, delaying each burst by the link's
/// one-way latency; stop after `limit` bytes when the connection is cut.
async fn shaped_copy<R, W>(
    mut r: R,
    mut w: W,
    sh: Shaping,
    limit: Option<u64>,
    counter: &AtomicU64,
) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 1024];
    let mut sent = 0u64;
    let mut last = tokio::time::Instant::now();
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            let _ = w.shutdown().await;
            return Ok(());
        }
        if last.elapsed() > sh.one_way_delay {
            // A new burst after a pause: it travels the link's latency first.
            tokio::time::sleep(sh.one_way_delay).await;
        }
        let n = match limit {
            Some(l) if sent + n as u64 >= l => {
                let rest = (l - sent) as usize;
                w.write_all(&buf[..rest]).await?;
                counter.fetch_add(rest as u64, Ordering::Relaxed);
                return Err(std::io::Error::other("connection cut"));
            }
            _ => n,
        };
        tokio::time::sleep(Duration::from_secs_f64(n as f64 / sh.bytes_per_sec as f64)).await;
        w.write_all(&buf[..n]).await?;
        sent += n as u64;
        counter.fetch_add(n as u64, Ordering::Relaxed);
        last = tokio::time::Instant::now();
    }
}

async fn shaped(
    mut client: TcpStream,
    target: &str,
    sh: Shaping,
    fault: Fault,
    cut_at: u64,
    stats: &ProxyStats,
) -> std::io::Result<()> {
    let mut server = TcpStream::connect(target).await?;
    let limit = match fault {
        Fault::None => None,
        _ => {
            stats.cut_requests.fetch_add(1, Ordering::Relaxed);
            Some(cut_at)
        }
    };
    if limit.is_none() {
        stats.passed.fetch_add(1, Ordering::Relaxed);
    }
    let (cr, cw) = client.split();
    let (sr, sw) = server.split();
    // The cut applies to whichever direction reaches it first.
    tokio::select! {
        r = shaped_copy(cr, sw, sh, limit, &stats.bytes_up) => r?,
        r = shaped_copy(sr, cw, sh, limit, &stats.bytes_down) => r?,
    }
    Ok(())
}

async fn counting_copy<R, W>(mut r: R, mut w: W, counter: &AtomicU64) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            let _ = w.shutdown().await;
            return Ok(());
        }
        w.write_all(&buf[..n]).await?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}
