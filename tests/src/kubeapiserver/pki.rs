//! The certificates and keys of one real API server: a CA, a serving certificate for
//! `127.0.0.1` and `localhost` signed by it, and the service-account signing key.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// What kube-apiserver and the fault proxy read, written under one directory.
pub struct Pki {
    /// The CA certificate, PEM (what kubeconfigs trust).
    pub ca_pem: String,
    /// The CA certificate, DER (what the proxy's client trusts).
    pub ca_der: CertificateDer<'static>,
    /// The serving certificate chain, DER (the proxy serves it too).
    pub serving_chain: Vec<CertificateDer<'static>>,
    serving_key_der: Vec<u8>,
    /// `serving.crt`, `serving.key`.
    pub serving_cert_file: PathBuf,
    /// The serving key file.
    pub serving_key_file: PathBuf,
    /// `sa.key`: the service-account signing key (ECDSA P-256, PKCS#8).
    pub service_account_key_file: PathBuf,
    /// `sa.pub`: its public half, which verifies the tokens.
    pub service_account_public_file: PathBuf,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("serving_cert_file", &self.serving_cert_file)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Generates everything and writes the files into `dir` (mode 0600 for keys).
    pub fn generate(dir: &Path) -> Result<Self> {
        let ca_key = KeyPair::generate().context("generating the CA key")?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "sealsync-testcluster-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .context("signing the CA certificate")?;
        let issuer = Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate().context("generating the serving key")?;
        let mut serving_params =
            CertificateParams::new(vec!["localhost".to_owned(), "kubernetes".to_owned()])?;
        serving_params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        serving_params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        serving_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let serving_cert = serving_params
            .signed_by(&serving_key, &issuer)
            .context("signing the serving certificate")?;

        let sa_key = KeyPair::generate().context("generating the service-account key")?;

        let serving_cert_file = dir.join("serving.crt");
        let serving_key_file = dir.join("serving.key");
        let service_account_key_file = dir.join("sa.key");
        let service_account_public_file = dir.join("sa.pub");
        let ca_pem = ca_cert.pem();
        write(&dir.join("ca.crt"), &ca_pem, false)?;
        // The chain kube-apiserver serves: its certificate, then the CA.
        write(
            &serving_cert_file,
            &format!("{}{}", serving_cert.pem(), ca_pem),
            false,
        )?;
        write(&serving_key_file, &serving_key.serialize_pem(), true)?;
        write(&service_account_key_file, &sa_key.serialize_pem(), true)?;
        write(
            &service_account_public_file,
            &sa_key.public_key_pem(),
            false,
        )?;
        Ok(Self {
            ca_der: ca_cert.der().clone(),
            serving_chain: vec![serving_cert.der().clone(), ca_cert.der().clone()],
            serving_key_der: serving_key.serialize_der(),
            ca_pem,
            serving_cert_file,
            serving_key_file,
            service_account_key_file,
            service_account_public_file,
        })
    }

    /// The serving key, for the proxy's TLS server.
    pub fn serving_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.serving_key_der.clone()))
    }
}

fn write(path: &Path, text: &str, private: bool) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    if private {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    Ok(())
}
