//! `get-progress` as a Lambda function (API Gateway: GET /goals/{goalId}/progress): builds the store once per container, then answers
//! each invocation and writes its metrics to stdout as CloudWatch EMF.

goalstore_lambda::lambda_main!(goalstore_lambda::api::get_progress);
