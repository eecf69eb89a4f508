//! A small connection pool per plugin generation: at most `pool_size`
//! connections, opened on demand, reused while healthy; a connection that
//! failed, closed or was abandoned mid-query (a timeout) is dropped, and the
//! next query opens a new one (reconnecting after a server restart).

use super::grant::Target;
use parking_lot::Mutex;
use std::sync::Arc;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connections of one generation.
pub struct Pool {
    target: Target,
    /// TLS settings (`sslmode=require` or `ca_file`), else plain TCP.
    tls: Option<Arc<rustls::ClientConfig>>,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
}

/// A connection lent to one query; dropped (closed) unless given back.
pub struct Lease<'a> {
    pool: &'a Pool,
    client: Option<Client>,
    _permit: SemaphorePermit<'a>,
}

impl Pool {
    /// A pool of at most `size` connections to `target`, over TLS when `tls`.
    pub fn new(target: Target, tls: Option<Arc<rustls::ClientConfig>>, size: usize) -> Pool {
        Pool {
            target,
            tls,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size),
        }
    }

    /// A connection: an idle open one, or a new one. Waits for a free slot.
    pub async fn get(&self) -> Result<Lease<'_>, String> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| "the connection pool is closed".to_string())?;
        let reused = {
            let mut idle = self.idle.lock();
            let mut found = None;
            while let Some(client) = idle.pop() {
                if !client.is_closed() {
                    found = Some(client);
                    break;
                }
            }
            found
        };
        let client = match reused {
            Some(client) => client,
            None => self.connect().await?,
        };
        Ok(Lease {
            pool: self,
            client: Some(client),
            _permit: permit,
        })
    }
}

impl Pool {
    /// A new connection; its task ends when the client is dropped or the
    /// server goes away.
    async fn connect(&self) -> Result<Client, String> {
        let config = &self.target.0;
        let client = match &self.tls {
            Some(tls) => {
                let (client, connection) = config
                    .connect(MakeRustlsConnect::new((**tls).clone()))
                    .await
                    .map_err(|e| connect_error(&e))?;
                tokio::spawn(drive(connection));
                client
            }
            None => {
                let (client, connection) =
                    config.connect(NoTls).await.map_err(|e| connect_error(&e))?;
                tokio::spawn(drive(connection));
                client
            }
        };
        Ok(client)
    }
}

/// Runs a connection until it ends.
async fn drive<F>(connection: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "sql connection ended");
    }
}

/// Why connecting failed, with the cause (`tokio_postgres` never shows the password).
fn connect_error(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("connecting: {e}: {cause}"),
        None => format!("connecting: {e}"),
    }
}

impl Lease<'_> {
    /// The connection.
    pub fn client(&mut self) -> Option<&mut Client> {
        self.client.as_mut()
    }

    /// Returns a healthy connection to the pool.
    pub fn give_back(mut self) {
        if let Some(client) = self.client.take()
            && !client.is_closed()
        {
            self.pool.idle.lock().push(client);
        }
    }
}
