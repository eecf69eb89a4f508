//! The `sql` capability (`wasmon:plugin/sql`): named, read-only queries
//! against the PostgreSQL database the manifest names.
//!
//! - `grant`: `[capabilities.sql]` (`url`/`url_env`, `timeout`, `max_rows`,
//!   `pool_size`, `ca_file`, `queries`); TLS with rustls when the URL says
//!   `sslmode=require` (system roots) or `ca_file` is set.
//! - `pool`: the generation's connections (at most `pool_size`, opened on
//!   demand, dropped when broken, so a restarted server is reconnected).
//! - `value`: typed parameters and cells.
//! - here: the `impl Host`. A query runs as `START TRANSACTION READ ONLY`,
//!   `SET LOCAL statement_timeout`, prepare (column and parameter types
//!   checked), bind, fetch at most `max_rows + 1` rows from the portal,
//!   commit.
//!
//! An unknown query name, like a missing grant, is a policy violation
//! (`not-granted`, a `capability` fault). Connection failures and queries
//! the server never answered trip the `PLUGIN/sql` breaker; a server error
//! (it answered) counts as healthy. Errors name the plugin, the query and
//! the server (without the password). Calls are counted in
//! `wasmon_plugin_capability_calls_total{capability="sql",result}`.

mod grant;
mod pool;
mod value;

pub use grant::{Section, SqlGrant};

use super::{Capability, KeyError, Services};
use crate::plugins::bindings::sql as wit;
use crate::plugins::breaker::Breaker;
use crate::plugins::context::PluginCtx;
use crate::telemetry::Telemetry;
use pool::Pool;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use value::{Cell, Param};

/// The `sql` capability.
pub struct Sql;

impl Capability for Sql {
    const NAME: &'static str = "sql";
    type Section = Section;
    type Grant = SqlGrant;
    type Shared = ();
    type State = State;

    fn grant(section: Section) -> Result<SqlGrant, KeyError> {
        section.resolve()
    }

    fn shared() -> anyhow::Result<()> {
        Ok(())
    }

    fn state(
        plugin: &Arc<str>,
        grant: Option<&SqlGrant>,
        _shared: &(),
        services: &Services<'_>,
    ) -> State {
        State {
            plugin: plugin.clone(),
            pool: grant.map(|g| Pool::new(g.target.clone(), g.tls_config.clone(), g.pool_size)),
            telemetry: services.telemetry.clone(),
            breaker: grant.map(|_| services.breakers.get(plugin, "sql", services.breaker)),
        }
    }
}

/// One generation's connections and breaker, dropped with it.
pub struct State {
    plugin: Arc<str>,
    /// The connections (when granted).
    pool: Option<Pool>,
    telemetry: Arc<Telemetry>,
    /// The `PLUGIN/sql` breaker (when granted).
    breaker: Option<Arc<Breaker>>,
}

impl State {
    fn count(&self, result: &str) {
        self.telemetry
            .plugin_capability_calls
            .with_label_values(&[&*self.plugin, "sql", result])
            .inc();
    }
}

/// How a query failed.
enum Failure {
    /// Connecting or the connection failed (trips the breaker).
    Connection(String),
    /// The server answered with an error, or a type did not fit.
    Query(String),
    /// The server cancelled it at the statement timeout (it answered).
    StatementTimeout(String),
    /// More rows than the cap.
    TooManyRows,
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        match e.as_db_error() {
            Some(db) if *db.code() == SqlState::QUERY_CANCELED => {
                Failure::StatementTimeout(db.message().to_string())
            }
            Some(db) => Failure::Query(format!("{} (SQLSTATE {})", db.message(), db.code().code())),
            None if e.is_closed() => Failure::Connection(format!("the connection closed: {e}")),
            None => match std::error::Error::source(&e) {
                Some(cause) => Failure::Connection(format!("{e}: {cause}")),
                None => Failure::Connection(e.to_string()),
            },
        }
    }
}

/// Runs `sql` with `params` on a connection of `pool`; gives the connection
/// back when it is still usable.
async fn run(
    pool: &Pool,
    grant: &SqlGrant,
    sql: &str,
    params: Vec<wit::Value>,
    statement_timeout: Duration,
) -> Result<wit::Rows, Failure> {
    let mut lease = pool.get().await.map_err(Failure::Connection)?;
    let client = lease
        .client()
        .ok_or_else(|| Failure::Connection("no connection".into()))?;
    let result = query(client, grant, sql, params, statement_timeout).await;
    match &result {
        // The transaction ended cleanly (committed, or rolled back by the error).
        Ok(_) | Err(Failure::Query(_) | Failure::StatementTimeout(_) | Failure::TooManyRows) => {
            lease.give_back()
        }
        Err(Failure::Connection(_)) => drop(lease),
    }
    result
}

async fn query(
    client: &mut tokio_postgres::Client,
    grant: &SqlGrant,
    sql: &str,
    params: Vec<wit::Value>,
    statement_timeout: Duration,
) -> Result<wit::Rows, Failure> {
    let tx = client.build_transaction().read_only(true).start().await?;
    let ms = statement_timeout.as_millis().clamp(1, i32::MAX as u128);
    tx.batch_execute(&format!("SET LOCAL statement_timeout = {ms}"))
        .await?;
    let statement = tx.prepare(sql).await?;
    for column in statement.columns() {
        if !value::readable(column.type_()) {
            return Err(Failure::Query(format!(
                "column {:?} has type {}, which the sql capability does not convert: cast it in the query (e.g. {}::text)",
                column.name(),
                column.type_(),
                column.name()
            )));
        }
    }
    let types = statement.params();
    if types.len() != params.len() {
        return Err(Failure::Query(format!(
            "the query takes {} parameter(s), {} given",
            types.len(),
            params.len()
        )));
    }
    for (i, (param, ty)) in params.iter().zip(types).enumerate() {
        value::check_param(param, ty)
            .map_err(|why| Failure::Query(format!("parameter ${}: {why}", i + 1)))?;
    }
    let params: Vec<Param> = params.into_iter().map(Param).collect();
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let portal = tx.bind(&statement, &refs).await?;
    let limit = i32::try_from(grant.max_rows.saturating_add(1)).unwrap_or(i32::MAX);
    let fetched = tx.query_portal(&portal, limit).await?;
    if fetched.len() > grant.max_rows as usize {
        return Err(Failure::TooManyRows);
    }
    let mut rows = Vec::with_capacity(fetched.len());
    for row in &fetched {
        let mut values = Vec::with_capacity(row.len());
        for i in 0..row.len() {
            let Cell(value) = row
                .try_get::<_, Cell>(i)
                .map_err(|e| Failure::Query(format!("column {i}: {e}")))?;
            values.push(value);
        }
        rows.push(values);
    }
    tx.commit().await?;
    Ok(wit::Rows {
        columns: statement
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect(),
        rows,
    })
}

impl wit::Host for PluginCtx {
    async fn query(
        &mut self,
        name: String,
        params: Vec<wit::Value>,
    ) -> wasmtime::Result<Result<wit::Rows, wit::SqlError>> {
        let env = self.env.clone();
        let plugin = &*env.name;
        let Some(grant) = env.manifest.capabilities.sql.as_ref() else {
            let why = self.deny(
                "sql",
                format!("sql query {name:?}: the manifest has no [capabilities.sql]"),
            );
            return Ok(Err(wit::SqlError::NotGranted(why)));
        };
        let state = &env.capabilities.sql;
        let Some(sql) = grant.queries.get(&name) else {
            state.count("not_granted");
            let why = self.deny(
                "sql",
                format!(
                    "sql query {name:?} is not in capabilities.sql.queries (server {})",
                    grant.server
                ),
            );
            return Ok(Err(wit::SqlError::NotGranted(why)));
        };
        let Some(pool) = &state.pool else {
            return Ok(Err(wit::SqlError::Connection(format!(
                "plugin {plugin}: sql query {name} on {}: no connection pool",
                grant.server
            ))));
        };
        let failure = |what: &str| {
            format!(
                "plugin {plugin}: sql query {name} on {}: {what}",
                grant.server
            )
        };
        if let Some(Err(why)) = state.breaker.as_ref().map(|b| b.admit()) {
            state.count("breaker_open");
            return Ok(Err(wit::SqlError::Connection(failure(&why))));
        }
        let trip = |error: &str| {
            if let Some(b) = &state.breaker {
                b.failure(error);
            }
        };
        let healthy = || {
            if let Some(b) = &state.breaker {
                b.success();
            }
        };
        let remaining = self.call.remaining();
        let statement_timeout = grant.timeout.min(remaining);
        // The client waits a little longer than the server's own timeout,
        // never beyond the call's budget.
        let wait = (grant.timeout + grant.timeout / 2).min(remaining);
        let ran =
            tokio::time::timeout(wait, run(pool, grant, sql, params, statement_timeout)).await;
        Ok(match ran {
            Err(_) => {
                state.count("timeout");
                let message = failure(&format!(
                    "no answer within {}",
                    humantime::format_duration(wait)
                ));
                trip(&message);
                Err(wit::SqlError::Timeout(message))
            }
            Ok(Err(Failure::Connection(e))) => {
                state.count("connection");
                let message = failure(&e);
                trip(&message);
                Err(wit::SqlError::Connection(message))
            }
            Ok(Err(Failure::StatementTimeout(e))) => {
                healthy();
                state.count("timeout");
                Err(wit::SqlError::Timeout(failure(&format!(
                    "{e} (statement_timeout {})",
                    humantime::format_duration(statement_timeout)
                ))))
            }
            Ok(Err(Failure::Query(e))) => {
                healthy();
                state.count("query");
                Err(wit::SqlError::Query(failure(&e)))
            }
            Ok(Err(Failure::TooManyRows)) => {
                healthy();
                state.count("too_many_rows");
                Err(wit::SqlError::TooManyRows(grant.max_rows))
            }
            Ok(Ok(rows)) => {
                healthy();
                state.count("ok");
                Ok(rows)
            }
        })
    }
}
