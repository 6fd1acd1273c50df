//! `goal-stream` as a Lambda function (DynamoDB Streams: cache invalidation): builds the store once per container, then answers
//! each invocation and writes its metrics to stdout as CloudWatch EMF.

goalstore_lambda::lambda_main!(goalstore_lambda::stream::handle);
