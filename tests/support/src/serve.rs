//! What the in-process test servers share: an axum app served from a
//! listener on a thread of its own ([`Serving`], used by [`crate::Recorder`]
//! and [`crate::EsBulk`]), and a listener bound again on the address of a
//! server that was dropped ([`bind_again`], a target coming back).
//!
//! The app runs on a current-thread tokio runtime on its own thread, so it
//! works the same from plain and async tests, and dropping it never blocks a
//! runtime.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// An axum app being served; stops when dropped.
#[derive(Debug)]
pub(crate) struct Serving {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Serving {
    /// Serves `app` from `listener` on a thread named `NAME-PORT`.
    pub(crate) fn start(listener: TcpListener, app: axum::Router, name: &str) -> Serving {
        listener
            .set_nonblocking(true)
            .expect("cannot make a listener non-blocking");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = app.layer(axum::extract::DefaultBodyLimit::disable());
        let name = name.to_string();
        std::thread::Builder::new()
            .name(format!("{name}-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("cannot build the {name}'s runtime: {e}"));
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .unwrap_or_else(|e| panic!("cannot register the {name}'s listener: {e}"));
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
            .expect("cannot start a server thread");
        Serving {
            addr,
            shutdown: Some(shutdown),
        }
    }

    /// Its address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Binds `addr`, the address of a server that was dropped, retrying for a
/// few seconds while the old one lets go of the port.
pub(crate) fn bind_again(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr) {
            Ok(listener) => return listener,
            Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot bind {addr} again: {e}"),
        }
    }
}
