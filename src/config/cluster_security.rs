//! The cluster link's security keys (`cluster_secret_file`, `cluster_tls_cert`,
//! `cluster_tls_key`, `cluster_tls_ca`), read into the Raft transport's
//! [`LinkSecurity`]. They only count with cluster keys set (`Config::cluster`).

use std::path::Path;

use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use warren_raft::{ClusterSecret, LinkSecurity, LinkTls};

use super::{Config, ConfigError, pem_error, read_certificates};

impl Config {
    /// The secret and TLS of the cluster links, read from their files: a
    /// missing, empty or (unix) group- or world-accessible secret file is an
    /// error, as RabbitMQ refuses such an Erlang cookie; the three TLS files
    /// go together.
    pub fn cluster_security(&self) -> Result<LinkSecurity, ConfigError> {
        let secret = match &self.cluster_secret_file {
            Some(path) => Some(read_secret(path)?),
            None => None,
        };
        let tls = match (
            &self.cluster_tls_cert,
            &self.cluster_tls_key,
            &self.cluster_tls_ca,
        ) {
            (None, None, None) => None,
            (Some(cert), Some(key), Some(ca)) => {
                let certs = read_certificates(cert, "cluster_tls_cert")?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| pem_error(key, "cluster_tls_key", e))?;
                let ca_certs = read_certificates(ca, "cluster_tls_ca")?;
                Some(LinkTls::new(certs, key, ca_certs).map_err(|e| {
                    ConfigError::Invalid(format!(
                        "cluster TLS (cluster_tls_cert {}, cluster_tls_key, cluster_tls_ca {}): {e}",
                        cert.display(),
                        ca.display()
                    ))
                })?)
            }
            _ => {
                return Err(ConfigError::Invalid(
                    "cluster_tls_cert, cluster_tls_key and cluster_tls_ca go together: \
                     set all three (PEM files) or none"
                        .into(),
                ));
            }
        };
        Ok(LinkSecurity { secret, tls })
    }
}

/// The secret in `path`, surrounding whitespace (a trailing newline) trimmed.
fn read_secret(path: &Path) -> Result<ClusterSecret, ConfigError> {
    let invalid = |why: String| {
        ConfigError::Invalid(format!("cluster_secret_file {}: {why}", path.display()))
    };
    let meta = std::fs::metadata(path).map_err(|e| invalid(format!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(invalid("not a regular file".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        // Erlang's auth.erl: "Cookie file ... must be accessible by owner only".
        if mode & 0o077 != 0 {
            return Err(invalid(format!(
                "must be accessible by its owner only (mode is {mode:o}; chmod 600 it)"
            )));
        }
    }
    let bytes = std::fs::read(path).map_err(|e| invalid(format!("cannot read it: {e}")))?;
    ClusterSecret::new(bytes.trim_ascii()).ok_or_else(|| invalid("it is empty".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_file(dir: &Path, text: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join(format!("secret-{mode:o}"));
        std::fs::write(&path, text).expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        path
    }

    fn clustered(f: impl FnOnce(&mut Config)) -> Result<LinkSecurity, String> {
        let mut c = Config {
            node_name: Some("warren@a".into()),
            ..Config::default()
        };
        f(&mut c);
        // Through validate, as at start: a bad file stops it.
        c.validate().map_err(|e| e.to_string())?;
        c.cluster_security().map_err(|e| e.to_string())
    }

    #[test]
    fn secret_file_is_read_and_checked() {
        let dir = tempfile::tempdir().expect("dir");
        let good = secret_file(dir.path(), "s3cret-of-the-cluster\n", 0o600);
        let security = clustered(|c| c.cluster_secret_file = Some(good.clone())).expect("valid");
        assert_eq!(
            security.secret,
            ClusterSecret::new(b"s3cret-of-the-cluster".to_vec())
        );
        assert!(security.tls.is_none());

        let e = clustered(|c| c.cluster_secret_file = Some(dir.path().join("none")))
            .expect_err("refused");
        assert!(
            e.contains("cluster_secret_file") && e.contains("cannot read"),
            "{e}"
        );
        let empty = secret_file(dir.path(), " \n", 0o400);
        let e = clustered(|c| c.cluster_secret_file = Some(empty)).expect_err("refused");
        assert!(e.contains("is empty"), "{e}");
        #[cfg(unix)]
        {
            let loose = secret_file(dir.path(), "s", 0o640);
            let e = clustered(|c| c.cluster_secret_file = Some(loose)).expect_err("refused");
            assert!(e.contains("owner only") && e.contains("640"), "{e}");
        }
        // Without cluster keys the file is not read.
        let plain = Config {
            cluster_secret_file: Some(dir.path().join("none")),
            ..Config::default()
        };
        plain.validate().expect("no cluster, not read");
    }

    #[test]
    fn cluster_tls_files_go_together() {
        let dir = tempfile::tempdir().expect("dir");
        let e = clustered(|c| c.cluster_tls_cert = Some(dir.path().join("c.pem")))
            .expect_err("refused");
        assert!(e.contains("go together"), "{e}");
        let e = clustered(|c| {
            c.cluster_tls_cert = Some(dir.path().join("c.pem"));
            c.cluster_tls_key = Some(dir.path().join("c.key"));
            c.cluster_tls_ca = Some(dir.path().join("ca.pem"));
        })
        .expect_err("refused");
        assert!(e.contains("cluster_tls_cert file"), "{e}");
        let c: Config = toml::from_str(
            "cluster_secret_file = \"s\"\ncluster_tls_cert = \"c.pem\"\n\
             cluster_tls_key = \"c.key\"\ncluster_tls_ca = \"ca.pem\"",
        )
        .expect("keys parse");
        assert_eq!(c.cluster_tls_ca, Some("ca.pem".into()));
    }
}
