//! A small pool of PostgreSQL connections, shared by the record store
//! ([`crate::store::postgres`]) and the photo store
//! ([`crate::blobs::postgres`]) of one node. It knows nothing of either.

use std::sync::Mutex;

use ::postgres::{Client, NoTls};

/// Lock the pool's state, ignoring poisoning: a panic elsewhere cannot
/// leave the list of idle connections half-changed.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Connections to one database, shared by the store and its blob store:
/// at most [`ClientPool::max_open`] open at once, of which up to
/// [`ClientPool::MAX_IDLE`] are kept between uses. A connection is made
/// when none is idle and the cap allows; past the cap a caller waits for
/// one to come back, for [`ClientPool::WAIT`] at most, then fails
/// ([`PoolBusy`], answered 503 so the phone tries again). Every node of a
/// province holds at most its cap, so the nodes together stay within the
/// database's `max_connections`. A connection that broke is dropped, not
/// returned.
pub struct ClientPool {
    url: String,
    max_open: usize,
    wait: std::time::Duration,
    state: Mutex<PoolState>,
    returned: std::sync::Condvar,
}

struct PoolState {
    idle: Vec<Client>,
    /// Connections open: in use or idle.
    open: usize,
}

/// Every connection of the pool stayed in use for [`ClientPool::WAIT`].
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("all {0} database connections stayed busy")]
pub struct PoolBusy(pub usize);

impl ClientPool {
    /// Most idle connections kept.
    pub const MAX_IDLE: usize = 16;
    /// Connections a node opens at most unless told (`--db-connections`):
    /// its merge turns (8) and as many again for feeds, the dashboard and
    /// photos; four nodes stay within PostgreSQL's default 100.
    pub const DEFAULT_MAX_OPEN: usize = 24;
    /// Longest wait for a connection when all are in use.
    pub const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

    /// A pool for `url`, holding `first` already, opening at most
    /// [`ClientPool::DEFAULT_MAX_OPEN`] connections.
    pub fn new(url: &str, first: Option<Client>) -> ClientPool {
        ClientPool::with_max(url, first, Self::DEFAULT_MAX_OPEN)
    }

    /// A pool for `url`, holding `first` already, opening at most
    /// `max_open` connections (at least 1).
    pub fn with_max(url: &str, first: Option<Client>, max_open: usize) -> ClientPool {
        let open = usize::from(first.is_some());
        ClientPool {
            url: url.to_owned(),
            max_open: max_open.max(1),
            wait: Self::WAIT,
            state: Mutex::new(PoolState { idle: first.into_iter().collect(), open }),
            returned: std::sync::Condvar::new(),
        }
    }

    /// The cap on open connections.
    pub fn max_open(&self) -> usize {
        self.max_open
    }

    /// Connections open now (in use or idle).
    pub fn open(&self) -> usize {
        lock(&self.state).open
    }

    /// Run `f` on a connection (reused, or new), waiting for one while all
    /// the pool may open are in use.
    pub fn with<T, E: From<::postgres::Error> + From<PoolBusy>>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut client = self.take::<E>()?;
        let out = f(&mut client);
        let mut st = lock(&self.state);
        if client.is_closed() || st.idle.len() >= Self::MAX_IDLE {
            st.open -= 1;
        } else {
            st.idle.push(client);
        }
        drop(st);
        self.returned.notify_one();
        out
    }

    fn take<E: From<::postgres::Error> + From<PoolBusy>>(&self) -> Result<Client, E> {
        let deadline = std::time::Instant::now() + self.wait;
        let mut st = lock(&self.state);
        loop {
            if let Some(c) = st.idle.pop() {
                if !c.is_closed() {
                    return Ok(c);
                }
                st.open -= 1;
                continue;
            }
            if st.open < self.max_open {
                st.open += 1;
                drop(st);
                return Client::connect(&self.url, NoTls).map_err(|e| {
                    lock(&self.state).open -= 1;
                    self.returned.notify_one();
                    E::from(e)
                });
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(PoolBusy(self.max_open).into());
            }
            st = self.returned.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

#[cfg(test)]
mod pool_tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{ClientPool, PoolBusy};
    use crate::store::StoreError;
    use crate::store::postgres::test_database_url;

    fn url() -> String {
        test_database_url().expect("this test needs GRIDSYNC_TEST_POSTGRES_URL (see README)")
    }

    /// Past its cap the pool opens no more connections: a caller waits
    /// for one to come back and then runs; one that waits too long is
    /// told the database is busy, and nothing is left held.
    #[test]
    #[ignore = "needs PostgreSQL: set GRIDSYNC_TEST_POSTGRES_URL and run with --include-ignored"]
    fn the_pool_never_opens_more_than_its_cap() {
        let pool = Arc::new(ClientPool::with_max(&url(), None, 2));
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let holders: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                let held = held_tx.clone();
                std::thread::spawn(move || {
                    pool.with(|c| {
                        held.send(()).unwrap();
                        std::thread::sleep(Duration::from_millis(400));
                        c.simple_query("SELECT 1").map(drop).map_err(StoreError::from)
                    })
                })
            })
            .collect();
        held_rx.recv().unwrap();
        held_rx.recv().unwrap();
        assert_eq!(pool.open(), 2);
        let started = Instant::now();
        pool.with(|c| c.simple_query("SELECT 1").map(drop).map_err(StoreError::from)).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200), "waited for a connection to come back");
        assert!(pool.open() <= 2);
        for h in holders {
            h.join().unwrap().unwrap();
        }

        let mut short = ClientPool::with_max(&url(), None, 1);
        short.wait = Duration::from_millis(100);
        let short = Arc::new(short);
        let holder = {
            let short = short.clone();
            let held = held_tx.clone();
            std::thread::spawn(move || {
                short.with(|_| {
                    held.send(()).unwrap();
                    std::thread::sleep(Duration::from_millis(600));
                    Ok::<_, StoreError>(())
                })
            })
        };
        held_rx.recv().unwrap();
        let busy = short.with(|_| Ok::<_, StoreError>(()));
        assert!(matches!(busy, Err(StoreError::Open(ref m)) if m == &PoolBusy(1).to_string()), "{busy:?}");
        holder.join().unwrap().unwrap();
        short.with(|_| Ok::<_, StoreError>(())).unwrap();
        assert_eq!(short.open(), 1);
    }
}
