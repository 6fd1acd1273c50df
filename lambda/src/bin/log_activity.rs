//! `log-activity` as a Lambda function (API Gateway: POST /goals/{goalId}/activities): builds the store once per container, then answers
//! each invocation and writes its metrics to stdout as CloudWatch EMF.

goalstore_lambda::lambda_main!(goalstore_lambda::api::log_activity);
