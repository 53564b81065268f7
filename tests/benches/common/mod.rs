//! What the benchmarks share.

use sosw_test_support::LocalAws;

/// Create no-op Lambda functions on moto (it answers Event invokes without running them).
pub async fn create_functions(aws: &LocalAws, names: &[&str]) {
    let iam = aws_sdk_iam::Client::new(aws.sdk_config());
    let role = iam
        .create_role()
        .role_name("bench")
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .expect("create role")
        .role
        .expect("role")
        .arn;
    // A minimal zip (one empty file): moto stores it, and answers Event invokes without running it.
    let zip: &[u8] = &[
        0x50, 0x4b, 0x03, 0x04, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0,
        0, b'a', 0x50, 0x4b, 0x01, 0x02, 20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b'a', 0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0,
        1, 0, 1, 0, 47, 0, 0, 0, 31, 0, 0, 0, 0, 0,
    ];
    let lambda = aws_sdk_lambda::Client::new(aws.sdk_config());
    for name in names {
        lambda
            .create_function()
            .function_name(*name)
            .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
            .role(&role)
            .handler("bootstrap")
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(aws_sdk_lambda::primitives::Blob::new(zip))
                    .build(),
            )
            .send()
            .await
            .expect("create function");
    }
}
