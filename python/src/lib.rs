//! The native half of the `lockyard` Python package. The Python half
//! (`lockyard/`) adds filelock's API (`lockyard.filelock`), the asyncio
//! glue and the exception classes.

mod dir;
mod errors;
mod holder;
mod lock;
mod once;
mod remote;
mod runtime;

use pyo3::prelude::*;

#[pymodule]
fn _lockyard(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<lock::Lock>()?;
    m.add_class::<lock::Guard>()?;
    m.add_class::<lock::Pending>()?;
    m.add_class::<holder::Holder>()?;
    m.add_class::<dir::Dir>()?;
    m.add_class::<dir::Info>()?;
    m.add_function(wrap_pyfunction!(once::once, m)?)?;
    #[cfg(feature = "postgres")]
    m.add_class::<remote::PgLocks>()?;
    #[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
    m.add_class::<remote::ObjectLocks>()?;
    m.add("FEATURES", features())?;
    Ok(())
}

/// The optional backends this build has.
fn features() -> Vec<&'static str> {
    [
        ("postgres", cfg!(feature = "postgres")),
        ("s3", cfg!(feature = "s3")),
        ("gcs", cfg!(feature = "gcs")),
        ("azure", cfg!(feature = "azure")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect()
}
