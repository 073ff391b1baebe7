// Recursive types. A field whose type names the deriving type counts as `NO_SCAN = false`
// (its `NO_SCAN` is the one being defined); a cycle through another type is broken with
// `#[gc(recursive)]` on one of its fields.
use gc_core::Trace;
use std::collections::BTreeMap;

#[derive(Trace)]
enum Json {
    Null,
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(BTreeMap<String, Self>),
}

#[derive(Trace)]
struct Tree<T> {
    value: T,
    children: Vec<Tree<T>>,
}

#[derive(Trace)]
struct Dir {
    name: String,
    #[gc(recursive)]
    entries: Vec<Entry>,
}

#[derive(Trace)]
enum Entry {
    File(String),
    Dir(Dir),
}

#[derive(Trace)]
#[gc(no_scan)]
struct Chain<T> {
    value: T,
    next: Option<Box<Chain<T>>>,
}

fn main() {
    assert!(!<Json as Trace>::NO_SCAN);
    assert!(!<Tree<u8> as Trace>::NO_SCAN);
    assert!(!<Dir as Trace>::NO_SCAN);
    assert!(!<Entry as Trace>::NO_SCAN);
    assert!(<Chain<u8> as Trace>::NO_SCAN);
    let json = Json::Array(vec![
        Json::Null,
        Json::Number(1.0),
        Json::String(String::new()),
        Json::Object(BTreeMap::new()),
    ]);
    assert_eq!(gc_core::__private::count_traced_edges(&json), 0);
    let tree = Tree {
        value: 1u8,
        children: vec![Tree {
            value: 2,
            children: vec![],
        }],
    };
    assert_eq!(gc_core::__private::count_traced_edges(&tree), 0);
    let dir = Dir {
        name: String::new(),
        entries: vec![Entry::File(String::new())],
    };
    assert_eq!(gc_core::__private::count_traced_edges(&dir), 0);
    let chain = Chain {
        value: 1u8,
        next: Some(Box::new(Chain {
            value: 2,
            next: None,
        })),
    };
    assert_eq!(chain.next.map(|c| c.value), Some(2));
    let _ = Entry::Dir(Dir {
        name: String::new(),
        entries: vec![],
    });
    let _ = chain.value;
}
