//! Telemetry events of records that could not be stored as Cognito holds them: a field
//! cleaned of characters PostgreSQL refuses, a record the mirror rejected and that was left
//! out of its write.
//!
//! One struct per event; its `emit()` logs with `tracing` and updates its `metrics` series.
//! Neither logs a value: values are personal data.

/// A field of a record read from Cognito held characters PostgreSQL cannot store; they were
/// removed before the record was hashed and written.
#[derive(Debug)]
pub struct RecordSanitized<'a> {
    /// `user` or `group`.
    pub kind: &'static str,
    /// The user's sub or the group's name.
    pub key: &'a str,
    /// The field's name; `attributes.<name>` for an attribute.
    pub field: &'a str,
}

impl RecordSanitized<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            kind = self.kind,
            key = self.key,
            field = self.field,
            "removed characters PostgreSQL cannot store from a field read from Cognito"
        );
        metrics::counter!(
            "records_sanitized_total",
            "kind" => self.kind,
            "field" => self.field.to_owned()
        )
        .increment(1);
    }
}

/// The mirror rejected a record because of its data; the rest of its write was committed
/// without it.
#[derive(Debug)]
pub struct RecordRejected<'a> {
    /// Which write: `daemon`, `backfill` or `reconcile`.
    pub path: &'static str,
    /// `user`, `group` or the tombstone of one of them.
    pub kind: &'static str,
    /// The user's sub or username, or the group's name.
    pub key: &'a str,
    /// Hasura's error.
    pub error: &'a str,
}

impl RecordRejected<'_> {
    pub fn emit(&self) {
        tracing::error!(
            path = self.path,
            kind = self.kind,
            key = self.key,
            error = self.error,
            "the mirror rejected a record's data; the rest of its batch was written without it"
        );
        metrics::counter!(
            "records_rejected_total",
            "path" => self.path,
            "kind" => self.kind
        )
        .increment(1);
    }
}
