//! Errors for people: the message and every cause under it, once each
//! (lockyard's errors keep their causes in `source()`, not in `Display`).

use std::error::Error;

/// `cannot open lock x.lock: Permission denied (os error 13)`.
pub fn chain(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        // A cause that repeats what was said adds nothing.
        if !text.ends_with(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_says_each_cause_once() {
        let dir = std::env::temp_dir().join(format!("lockyard-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("plain");
        std::fs::write(&file, "a file").unwrap();
        let e = lockyard::FileLock::new(file.join("x.lock"))
            .try_lock()
            .unwrap_err();
        let cause = e.source().unwrap().to_string();
        let said = chain(&e);
        assert_eq!(said.matches(&cause).count(), 1, "{said}");
        assert!(said.starts_with(&e.to_string()), "{said}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
