// Skipped fields are never visited, so their type need not implement `Trace` (it must
// still be `Send + Sync + 'static`).
use gc_core::Trace;
use std::time::Instant;

/// A foreign resource that does not implement `Trace`.
struct Connection {
    fd: i32,
}

#[derive(Trace)]
struct Session {
    id: u64,
    #[gc(skip)]
    connection: Connection,
    #[gc(skip)]
    callback: Box<dyn Fn(u64) -> u64 + Send + Sync>,
    #[gc(skip)]
    started: Instant,
}

#[derive(Trace)]
struct AllSkipped(#[gc(skip)] Connection, #[gc(skip)] fn() -> u8);

fn main() {
    assert!(<Session as Trace>::NO_SCAN);
    assert!(<AllSkipped as Trace>::NO_SCAN);
    let session = Session {
        id: 1,
        connection: Connection { fd: 3 },
        callback: Box::new(|x| x + 1),
        started: Instant::now(),
    };
    assert_eq!((session.callback)(session.id), 2);
    assert_eq!(session.connection.fd, 3);
    let _ = session.started;
    let all = AllSkipped(Connection { fd: 4 }, || 1);
    assert_eq!(all.0.fd + i32::from((all.1)()), 5);
}
