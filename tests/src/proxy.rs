//! A TCP proxy on loopback that the test controls: it passes traffic, cuts
//! a connection in the middle of a request, or forwards the request and
//! loses the response (after the server committed). Faults are drawn from
//! a seeded RNG per connection, so a run is repeatable in what it injects.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
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
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Start a proxy to `target` with a seeded fault RNG.
    pub async fn start(target: &str, seed: u64) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let cut = Arc::new(AtomicU32::new(0));
        let lose = Arc::new(AtomicU32::new(0));
        let stats = Arc::new(ProxyStats::default());
        let target = Arc::new(Mutex::new(target.to_owned()));
        let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
        let (c, l, s, t) = (cut.clone(), lose.clone(), stats.clone(), target.clone());
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
                let stats = s.clone();
                tokio::spawn(async move {
                    let _ = handle(client, &target, fault, &stats).await;
                });
            }
        });
        Ok(Proxy { addr, cut_percent: cut, lose_percent: lose, stats, target, task })
    }

    /// Base URL through the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
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
            tokio::io::copy_bidirectional(&mut client, &mut server).await?;
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
