//! TLS set-up shared by every client in the process.
//!
//! The crate compiles rustls with the ring provider only (kube asks for it;
//! reqwest is built without a provider of its own), and reqwest does not
//! install one itself. Call this before building any HTTP client.

/// Makes ring the process-wide rustls crypto provider. Idempotent: an error
/// only means a provider is already installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
