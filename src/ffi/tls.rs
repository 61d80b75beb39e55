//! TLS from C: what an acceptor serves (and its reload), and how `wss://`
//! clients verify servers. Without the `tls` feature every call returns
//! `WSCONN_ERR_TLS_NOT_BUILT`.
//!
//! The sans-IO session API stays TLS-free: a program that owns its sockets
//! runs its own TLS library and feeds the session the decrypted bytes.

use std::ffi::c_char;

use super::config::wsconn_config_t;
use super::result::{code, code_of, Failure};
use super::{bytes_arg, str_arg};
use crate::runtime::acceptor::Acceptor;
use crate::runtime::error::Error;
use crate::runtime::tls::{ClientTls, ServerTls, TlsError};

/// Serves `tls` (or plain for `None`) on `acceptor`; `tls` gets what the
/// acceptor serves now, so that a reload can keep its names.
///
/// # Safety
/// `acceptor` is NULL or a live acceptor.
unsafe fn serve(
    acceptor: *mut Acceptor,
    tls: impl FnOnce(Option<ServerTls>) -> Result<Option<ServerTls>, Failure>,
) -> i32 {
    // SAFETY: NULL or live per the caller.
    let Some(acceptor) = (unsafe { acceptor.as_ref() }) else {
        return code(Failure::Null);
    };
    match tls(acceptor.tls()) {
        Ok(tls) => {
            acceptor.set_tls(tls);
            0
        }
        Err(e) => code(e),
    }
}

fn tls_failure(e: TlsError) -> Failure {
    Error::Tls(e).into()
}

/// Serves TLS (1.2 and 1.3, ALPN `http/1.1`) to the connections accepted from
/// now on, with the PEM certificate chain (leaf first) at `cert_path` and the
/// PEM private key at `key_path`; both NULL: plain again. Call it before
/// `wsconn_acceptor_start` to listen with TLS, and again at any time to
/// **reload** (e.g. a renewed certificate): connections already running keep
/// the certificate they started with; if a file is bad, the one in place stays.
/// A reload replaces the default certificate and keeps those added by name
/// (`wsconn_acceptor_add_tls_name`; add one again to renew it).
///
/// A connection serves TLS when it is started on the accepted socket inside
/// the accept callback (`wsconn_set_fd` + `wsconn_start`, as the examples do);
/// started later, it runs plain.
///
/// Returns `WSCONN_OK`, `WSCONN_ERR_NULL` (NULL `acceptor`, or one path NULL),
/// `WSCONN_ERR_INVALID_ARGUMENT` (a path not UTF-8),
/// `WSCONN_ERR_TLS_CREDENTIALS` (a file missing, unreadable, not PEM, or a key
/// that does not match), `WSCONN_ERR_TLS_NOT_BUILT`. Reads the files
/// synchronously. Not thread-safe: call on the acceptor's reactor thread (e.g.
/// through `wsconn_reactor_defer` from elsewhere).
///
/// # Safety
/// `acceptor` is NULL or a live acceptor; the paths are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wsconn_acceptor_set_tls(
    acceptor: *mut Acceptor,
    cert_path: *const c_char,
    key_path: *const c_char,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        unsafe {
            serve(acceptor, |now| {
                if cert_path.is_null() && key_path.is_null() {
                    return Ok(None);
                }
                // SAFETY: NULL or NUL-terminated per the caller.
                let (cert, key) = (str_arg(cert_path)?, str_arg(key_path)?);
                let tls = match now {
                    Some(now) => now.with_default_files(cert, key),
                    None => ServerTls::from_files(cert, key),
                };
                tls.map(Some).map_err(tls_failure)
            })
        }
    })
}

/// Like `wsconn_acceptor_set_tls`, with the PEM certificate chain and private
/// key in memory (copied; the buffers may be freed after the call). Also a
/// reload. Returns `WSCONN_OK`, `WSCONN_ERR_NULL` (NULL `acceptor`, or a NULL
/// buffer with a nonzero length), `WSCONN_ERR_TLS_CREDENTIALS` (not PEM, no
/// certificate or key, or a key that does not match),
/// `WSCONN_ERR_TLS_NOT_BUILT`. Not thread-safe (the acceptor's thread).
///
/// # Safety
/// `acceptor` is NULL or a live acceptor; each buffer holds its length in bytes.
#[no_mangle]
pub unsafe extern "C" fn wsconn_acceptor_set_tls_pem(
    acceptor: *mut Acceptor,
    cert_pem: *const u8,
    cert_len: usize,
    key_pem: *const u8,
    key_len: usize,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        unsafe {
            serve(acceptor, |now| {
                // SAFETY: each buffer holds its length per the caller.
                let (cert, key) = (bytes_arg(cert_pem, cert_len)?, bytes_arg(key_pem, key_len)?);
                let tls = match now {
                    Some(now) => now.with_default_pem(cert, key),
                    None => ServerTls::from_pem(cert, key),
                };
                tls.map(Some).map_err(tls_failure)
            })
        }
    })
}

/// Adds a certificate for clients asking for `name` (SNI, case-insensitive;
/// replacing one added before for it) to the TLS the acceptor serves: PEM
/// chain at `cert_path`, PEM key at `key_path`. Other names, and clients that
/// send none, keep getting the certificate of `wsconn_acceptor_set_tls`, which
/// must come first (a reload through it keeps the names added). Applies to new
/// connections. Returns `WSCONN_OK`, `WSCONN_ERR_NULL`,
/// `WSCONN_ERR_INVALID_ARGUMENT` (a string not UTF-8), `WSCONN_ERR_STATE` (no
/// TLS set yet), `WSCONN_ERR_TLS_CREDENTIALS` (nothing changed),
/// `WSCONN_ERR_TLS_NOT_BUILT`. Not thread-safe (the acceptor's thread).
///
/// # Safety
/// `acceptor` is NULL or a live acceptor; the strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wsconn_acceptor_add_tls_name(
    acceptor: *mut Acceptor,
    name: *const c_char,
    cert_path: *const c_char,
    key_path: *const c_char,
) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        let Some(a) = (unsafe { acceptor.as_ref() }) else {
            return code(Failure::Null);
        };
        // SAFETY: NULL or NUL-terminated per the caller.
        let strings = unsafe { (str_arg(name), str_arg(cert_path), str_arg(key_path)) };
        let (name, cert, key) = match strings {
            (Ok(name), Ok(cert), Ok(key)) => (name, cert, key),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return code(e),
        };
        if !crate::runtime::tls::BUILT_IN {
            return code(tls_failure(TlsError::NotBuilt));
        }
        let Some(tls) = a.tls() else {
            return code(Error::State);
        };
        match tls.with_name_files(name, cert, key) {
            Ok(tls) => {
                a.set_tls(Some(tls));
                0
            }
            Err(e) => code(tls_failure(e)),
        }
    })
}

/// Mutual TLS: from now on, every client of `acceptor` must show a certificate
/// signed by one of the authorities in the PEM file at `ca_path` (any
/// certificate they sign is accepted; the handshake of a client without one,
/// or with another, is refused and counted by `wsconn_acceptor_tls_refused`).
/// NULL `ca_path`: no client certificate asked for again. Reloads
/// (`wsconn_acceptor_set_tls`) and names added later keep the setting.
/// Connections already running are not affected. Returns `WSCONN_OK`,
/// `WSCONN_ERR_NULL`, `WSCONN_ERR_INVALID_ARGUMENT` (path not UTF-8),
/// `WSCONN_ERR_STATE` (the acceptor serves no TLS yet),
/// `WSCONN_ERR_TLS_CREDENTIALS` (missing, unreadable, no certificate; nothing
/// changed), `WSCONN_ERR_TLS_NOT_BUILT`. Not thread-safe (the acceptor's thread).
///
/// # Safety
/// `acceptor` is NULL or a live acceptor; `ca_path` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wsconn_acceptor_set_tls_client_ca(acceptor: *mut Acceptor, ca_path: *const c_char) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or live per the caller.
        unsafe {
            serve(acceptor, |now| {
                // SAFETY: NULL or NUL-terminated per the caller.
                let path = (!ca_path.is_null()).then(|| str_arg(ca_path)).transpose()?;
                if !crate::runtime::tls::BUILT_IN {
                    return Err(tls_failure(TlsError::NotBuilt));
                }
                let now = now.ok_or(Failure::from(Error::State))?;
                now.with_client_ca_file(path).map(Some).map_err(tls_failure)
            })
        }
    })
}

/// How many TLS handshakes the connections accepted by `acceptor` refused: a
/// plain HTTP request or garbage on the TLS port, no protocol version or
/// cipher in common, a bad record. Each such connection was closed (its close
/// callback gets `WSCONN_ERR_TLS_PROTOCOL` or a more precise TLS code); the
/// count spans reloads. 0 for a NULL `acceptor`, one that never served TLS,
/// or a build without TLS. Not thread-safe (the acceptor's thread). The
/// reactor's `refused_tls` counter (`wsconn_reactor_stats`) counts the same
/// refusals for all the connections it runs, and its log tells each
/// (`WSCONN_LOG_TLS_FAILED`).
///
/// # Safety
/// `acceptor` is NULL or a live acceptor.
#[no_mangle]
pub unsafe extern "C" fn wsconn_acceptor_tls_refused(acceptor: *const Acceptor) -> u64 {
    ffi_boundary!(0, {
        // SAFETY: NULL or live per the caller.
        unsafe { acceptor.as_ref() }.map_or(0, Acceptor::tls_refused)
    })
}

/// Applies `change` to the client TLS settings of `config`.
///
/// # Safety
/// `config` is NULL or a live config.
unsafe fn update_tls(config: *mut wsconn_config_t, change: impl FnOnce(&mut ClientTls) -> Result<(), Failure>) -> i32 {
    ffi_boundary!(code(Failure::Panic), {
        // SAFETY: NULL or a live config, used by one thread at a time (documented).
        let Some(config) = (unsafe { config.as_mut() }) else {
            return code(Failure::Null);
        };
        code_of(change(&mut config.inner.tls))
    })
}

/// `wss://` clients made with this config trust the certificate authorities of
/// the PEM file at `path` instead of the system's store (by default, on Debian
/// /etc/ssl/certs/ca-certificates.crt, the one OpenSSL uses; the environment
/// variable `SSL_CERT_FILE` overrides it). A server whose certificate is
/// byte for byte one of the file's is trusted as itself once its validity,
/// name and usage check out, even if it is marked CA:TRUE (as the self-signed
/// certificates of `openssl req -x509` are). Returns `WSCONN_OK`,
/// `WSCONN_ERR_NULL`, `WSCONN_ERR_INVALID_ARGUMENT` (path not UTF-8),
/// `WSCONN_ERR_TLS_CREDENTIALS` (missing, unreadable, no certificate),
/// `WSCONN_ERR_TLS_NOT_BUILT`; on error the config is unchanged.
///
/// # Safety
/// `config` is NULL or a live config; `path` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_tls_ca_file(config: *mut wsconn_config_t, path: *const c_char) -> i32 {
    // SAFETY: NULL or live per the caller.
    unsafe {
        update_tls(config, |tls| {
            // SAFETY: NULL or NUL-terminated per the caller.
            let path = str_arg(path)?;
            tls.set_ca_file(path).map_err(tls_failure)
        })
    }
}

/// `wss://` clients made with this config show this certificate chain and
/// private key (PEM files) to servers that ask for one (mutual TLS). Returns
/// `WSCONN_OK`, `WSCONN_ERR_NULL`, `WSCONN_ERR_INVALID_ARGUMENT` (a path not
/// UTF-8), `WSCONN_ERR_TLS_CREDENTIALS`, `WSCONN_ERR_TLS_NOT_BUILT`; on error
/// the config is unchanged.
///
/// # Safety
/// `config` is NULL or a live config; the paths are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_tls_client_cert(
    config: *mut wsconn_config_t,
    cert_path: *const c_char,
    key_path: *const c_char,
) -> i32 {
    // SAFETY: NULL or live per the caller.
    unsafe {
        update_tls(config, |tls| {
            // SAFETY: NULL or NUL-terminated per the caller.
            let (cert, key) = (str_arg(cert_path)?, str_arg(key_path)?);
            tls.set_client_cert_files(cert, key).map_err(tls_failure)
        })
    }
}

/// **INSECURE — for tests only.** With nonzero `on`, `wss://` clients made
/// with this config accept ANY server certificate, for any host name: anyone
/// on the network path can then read and change all the traffic. Never ship
/// a program with this on. Returns `WSCONN_OK`, `WSCONN_ERR_NULL`,
/// `WSCONN_ERR_TLS_NOT_BUILT`.
///
/// # Safety
/// `config` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn wsconn_config_set_tls_insecure(config: *mut wsconn_config_t, on: i32) -> i32 {
    // SAFETY: NULL or live per the caller.
    unsafe { update_tls(config, |tls| tls.set_insecure(on != 0).map_err(tls_failure)) }
}
