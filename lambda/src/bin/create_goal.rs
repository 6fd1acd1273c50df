//! `create-goal` as a Lambda function (API Gateway: POST /goals): builds the store once per container, then
//! answers each invocation (HTTP API 2.0 or REST 1.0 events, through `lambda_http`) and writes its
//! metrics to stdout as CloudWatch EMF.

goalstore_lambda::http_main!(goalstore_lambda::http::routes::create_goal);
