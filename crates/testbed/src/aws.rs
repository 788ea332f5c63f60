//! The one AWS SDK configuration shape of the test bed: an endpoint override (moto, or a
//! [`crate::FaultProxy`] in front of it), region `us-east-1` and static test credentials.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cognitoidentityprovider::config::Credentials;

/// The region every test uses.
pub const AWS_REGION: &str = "us-east-1";
/// The access key moto accepts (any would do; this is what the docs and scripts use).
pub const AWS_ACCESS_KEY_ID: &str = "testing";
/// The secret key paired with [`AWS_ACCESS_KEY_ID`].
pub const AWS_SECRET_ACCESS_KEY: &str = "testing";

/// An `SdkConfig` whose clients all talk to `endpoint` (for example `http://127.0.0.1:5000`).
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(AWS_REGION))
        .credentials_provider(Credentials::new(
            AWS_ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY,
            None,
            None,
            "testbed",
        ))
        .load()
        .await
}
