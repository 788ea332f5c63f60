//! Per-request database access: one pooled connection per GraphQL request, and the one
//! transaction all mutation fields of the request share.

use serde_json::{Map, Value as Json};
use tokio::sync::Mutex;

use crate::error::{Code, HasuraError};
use crate::sql::Params;

/// A row as PostgreSQL's `json_agg` hands it over.
pub(crate) type Row = Map<String, Json>;

/// Per-request database access. All mutation fields of one request run in one
/// transaction, opened by the first of them and closed by [`Session::finish`].
pub struct Session {
    /// Taken out only by `Drop`, to close rather than pool a connection mid-transaction.
    client: Mutex<Option<deadpool_postgres::Object>>,
    state: Mutex<TxState>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TxState {
    Idle,
    Open,
    Failed,
}

impl Session {
    /// Wraps a pooled connection for one request.
    pub fn new(client: deadpool_postgres::Object) -> Self {
        Self {
            client: Mutex::new(Some(client)),
            state: Mutex::new(TxState::Idle),
        }
    }

    pub(crate) async fn query_one(
        &self,
        sql: &str,
        params: &Params,
        path: &str,
    ) -> Result<tokio_postgres::Row, HasuraError> {
        let guard = self.client.lock().await;
        let client = guard.as_ref().ok_or_else(|| closed(path))?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|e| HasuraError::from_pg(&e, path))?;
        client
            .query_one(&statement, &params.as_refs())
            .await
            .map_err(|e| HasuraError::from_pg(&e, path))
    }

    /// Runs one mutation field's statements inside the request transaction. A row that
    /// fails its permission check fails the field. After a failure every later mutation
    /// field of the request is refused; the request is rolled back as a whole.
    pub(crate) async fn mutate(
        &self,
        statements: Vec<(String, Params)>,
        path: &str,
    ) -> Result<MutationResult, HasuraError> {
        let mut state = self.state.lock().await;
        match *state {
            TxState::Failed => {
                return Err(HasuraError::new(
                    Code::Unexpected,
                    path,
                    "an earlier mutation of this request failed",
                ));
            }
            TxState::Idle => {
                let guard = self.client.lock().await;
                let client = guard.as_ref().ok_or_else(|| closed(path))?;
                client
                    .batch_execute("BEGIN")
                    .await
                    .map_err(|e| HasuraError::from_pg(&e, path))?;
                *state = TxState::Open;
            }
            TxState::Open => {}
        }
        let mut result = MutationResult::default();
        for (sql, params) in statements {
            let row = match self.query_one(&sql, &params, path).await {
                Ok(row) if row.get::<_, bool>(2) => row,
                Ok(_) => {
                    *state = TxState::Failed;
                    return Err(HasuraError::new(
                        Code::PermissionError,
                        path,
                        "check constraint of an insert/update permission has failed",
                    ));
                }
                Err(err) => {
                    *state = TxState::Failed;
                    return Err(err);
                }
            };
            result.affected_rows += row.get::<_, i64>(0);
            result.returning.extend(rows_of(row.get(1)));
        }
        Ok(result)
    }

    /// Commits the request's transaction when every field succeeded, rolls it back
    /// otherwise; does nothing when no mutation ran.
    pub async fn finish(&self, success: bool) -> Result<(), tokio_postgres::Error> {
        let mut state = self.state.lock().await;
        let statement = match *state {
            TxState::Idle => return Ok(()),
            TxState::Open if success => "COMMIT",
            TxState::Open | TxState::Failed => "ROLLBACK",
        };
        let guard = self.client.lock().await;
        let result = match guard.as_ref() {
            Some(client) => client.batch_execute(statement).await,
            None => Ok(()),
        };
        // Either way PostgreSQL has ended the transaction (or the connection is gone,
        // which the pool notices when recycling).
        *state = TxState::Idle;
        result
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A request abandoned mid-transaction (client gone) must not hand a connection
        // with an open transaction back to the pool: close it instead.
        if *self.state.get_mut() != TxState::Idle
            && let Some(client) = self.client.get_mut().take()
        {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

fn closed(path: &str) -> HasuraError {
    HasuraError::new(Code::Unexpected, path, "database connection closed")
}

/// What a mutation field returns to `<t>_mutation_response`.
#[derive(Default)]
pub(crate) struct MutationResult {
    pub(crate) affected_rows: i64,
    pub(crate) returning: Vec<Row>,
}

/// The objects of a `json` array.
pub(crate) fn rows_of(value: Json) -> Vec<Row> {
    match value {
        Json::Array(items) => items
            .into_iter()
            .filter_map(|item| match item {
                Json::Object(map) => Some(map),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
