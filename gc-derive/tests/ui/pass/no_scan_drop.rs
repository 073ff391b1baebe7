// A `#[gc(no_scan)]` type holds no traced handle, so it may implement `Drop`.
use gc_core::Trace;
use std::sync::atomic::{AtomicUsize, Ordering};

static DROPPED: AtomicUsize = AtomicUsize::new(0);

#[derive(Trace)]
#[gc(no_scan)]
struct TempFile {
    path: std::path::PathBuf,
    size: u64,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Trace)]
#[gc(no_scan)]
enum Token<T> {
    Word(String),
    Number(T),
}

impl<T> Drop for Token<T> {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// A traced type may hold a `no_scan` type with `Drop`: the resource lives in a field.
#[derive(Trace)]
struct Document {
    file: TempFile,
    words: Vec<Token<u32>>,
}

fn main() {
    assert!(<TempFile as Trace>::NO_SCAN);
    assert!(<Token<u64> as Trace>::NO_SCAN);
    assert!(<Document as Trace>::NO_SCAN);
    let doc = Document {
        file: TempFile {
            path: "/tmp/x".into(),
            size: 0,
        },
        words: vec![Token::Word(String::from("a")), Token::Number(1)],
    };
    assert_eq!(doc.file.size, 0);
    assert!(doc.file.path.is_absolute());
    drop(doc);
    assert_eq!(DROPPED.load(Ordering::Relaxed), 3);
}
