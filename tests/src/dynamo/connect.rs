//! A DynamoDB client for a local endpoint, and readable SDK errors.

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::DisplayErrorContext;

/// A client for the given endpoint: region us-east-1, static dummy credentials
/// ("test"/"test"), so it never consults the real AWS credential chain.
pub fn client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "goalstore-tests",
        ))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// An SDK error with its whole cause chain in the message.
///
/// The SDK's own `Display` says little more than "service error"; the context display
/// includes the service's code and message, which is what a failing test needs to show.
pub(crate) fn sdk_error(doing: String, error: impl std::error::Error) -> anyhow::Error {
    anyhow::anyhow!("{doing}: {}", DisplayErrorContext(error))
}
