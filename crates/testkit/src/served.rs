//! A service under test, served in this test process (on a free loopback
//! port unless told otherwise): the in-process counterpart of starting the binary.
//!
//! Every service library exposes `serve(listener, …, shutdown)` for its
//! public side, and the scaffold serves a whole service, admin listener
//! included (`servicekit::launch::serve`); [`Served`] binds the listener
//! (or both: [`Served::start_with_admin`]), spawns that future and owns its
//! shutdown token, so a test can stop the service and see that it stopped
//! cleanly. Dropping it cancels the token, so a failing test never leaves
//! a server behind.

use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long [`Served::stop`] waits for the service to return.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// A service spawned in this process, stopped when dropped.
pub struct Served<E: Debug> {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its admin listener listens (health, readiness, metrics), if it
    /// was started with one.
    pub admin_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), E>>>,
}

impl<E: Debug + Send + 'static> Served<E> {
    /// Binds a free loopback port and spawns `serve(listener, shutdown)`.
    pub async fn start<F, Fut>(serve: F) -> Self
    where
        F: FnOnce(TcpListener, CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), serve).await
    }

    /// Like [`Served::start`], on `addr` (e.g. to come back on the port a
    /// stopped instance had).
    pub async fn start_on<F, Fut>(addr: SocketAddr, serve: F) -> Self
    where
        F: FnOnce(TcpListener, CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let listener = bind(addr).await;
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, shutdown.clone()));
        Served {
            addr,
            admin_addr: None,
            shutdown,
            task: Some(task),
        }
    }

    /// Like [`Served::start`], with a second free loopback port for the
    /// admin listener: spawns `serve(public, admin, shutdown)`.
    pub async fn start_with_admin<F, Fut>(serve: F) -> Self
    where
        F: FnOnce(TcpListener, TcpListener, CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        Self::start_with_admin_on(SocketAddr::from(([127, 0, 0, 1], 0)), serve).await
    }

    /// Like [`Served::start_with_admin`], the public side on `addr`.
    pub async fn start_with_admin_on<F, Fut>(addr: SocketAddr, serve: F) -> Self
    where
        F: FnOnce(TcpListener, TcpListener, CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let admin = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await;
        let admin_addr = admin.local_addr().expect("a bound listener has an address");
        let mut served =
            Self::start_on(addr, |public, shutdown| serve(public, admin, shutdown)).await;
        served.admin_addr = Some(admin_addr);
        served
    }

    /// `http://<admin addr><path>`; panics if it was started without one.
    pub fn admin_url(&self, path: &str) -> String {
        let admin = self.admin_addr.expect("started with an admin listener");
        format!("http://{admin}{path}")
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Asks the service to stop and waits until `serve` has returned `Ok`.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(STOP_DEADLINE, task)
                .await
                .expect("the service stops within 10 s of shutdown")
                .expect("the service task panicked")
                .expect("the service returned an error");
        }
    }
}

async fn bind(addr: SocketAddr) -> TcpListener {
    TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("binding {addr}: {e}"))
}

impl<E: Debug> Drop for Served<E> {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
