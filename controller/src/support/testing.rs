//! For in-process tests: the embedded test API server, with a client of the controller's
//! kind (built from a kubeconfig, as in a cluster).

use sealsync_tests::apiserver::TestApiServer;

/// A running embedded server and what talks to it; dropping it stops the server.
pub(crate) struct TestApi {
    /// Kept running for the test's length; its faults are the test's to inject.
    pub(crate) server: TestApiServer,
    /// Holds the kubeconfig, and serves as a scratch directory.
    pub(crate) dir: tempfile::TempDir,
    /// The configuration the client was built from.
    pub(crate) config: kube::Config,
    /// An admin client.
    pub(crate) client: kube::Client,
}

/// Starts the embedded server.
pub(crate) async fn test_api() -> TestApi {
    let server = TestApiServer::start().await.expect("test server");
    let dir = tempfile::tempdir().expect("tmp");
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let config = sealsync_core::kubeclient::config(Some(&kubeconfig), None)
        .await
        .expect("config");
    let client = kube::Client::try_from(config.clone()).expect("client");
    TestApi {
        server,
        dir,
        config,
        client,
    }
}
