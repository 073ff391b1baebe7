// Derived types holding the handle types (`Gc`, `GcSlot`, `GcCell`) directly and inside
// containers: they are traced (`NO_SCAN` is false), every handle is reported once, and each
// can be moved into the heap with `Gc::new`. A `#[gc(no_scan)]` type with `Drop` can live in
// a `Gc` and is dropped by the collector.
use gc_core::__private::count_traced_edges;
use gc_core::{Gc, GcCell, GcSlot, Trace};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

static CLOSED: AtomicUsize = AtomicUsize::new(0);

#[derive(Trace)]
struct Leaf {
    id: u64,
}

/// Every kind of handle field.
#[derive(Trace)]
struct Node {
    id: u64,
    leaf: Gc<Leaf>,
    next: GcSlot<Node>,
    children: GcCell<Vec<Gc<Node>>>,
    parent: Option<Gc<Node>>,
    by_name: HashMap<String, Gc<Leaf>>,
    fixed: Box<[Gc<Leaf>]>,
    #[gc(skip)]
    label: String,
}

#[derive(Trace)]
enum Tree {
    Empty,
    Leaf(Gc<Leaf>),
    Branch {
        left: GcSlot<Tree>,
        right: Option<Gc<Tree>>,
        weight: u32,
    },
}

/// Generic over the target type.
#[derive(Trace)]
struct Graph<T: Trace> {
    nodes: GcCell<Vec<Gc<T>>>,
    index: HashMap<String, Gc<T>>,
    root: GcSlot<T>,
    pinned: Box<[Gc<T>]>,
}

#[derive(Trace)]
struct Pair<A, B>(A, Option<B>);

/// Holds no handle, so it may implement `Drop`; it is dropped by the collector.
#[derive(Trace)]
#[gc(no_scan)]
struct FileHandle {
    fd: u32,
}

impl Drop for FileHandle {
    fn drop(&mut self) {
        CLOSED.fetch_add(1, Ordering::Relaxed);
    }
}

/// A traced type holding a `no_scan` type with `Drop` next to a handle.
#[derive(Trace)]
struct Open {
    file: FileHandle,
    owner: Gc<Leaf>,
}

// Checked at compile time.
const _: () = {
    assert!(<Leaf as Trace>::NO_SCAN);
    assert!(!<Node as Trace>::NO_SCAN);
    assert!(!<Tree as Trace>::NO_SCAN);
    assert!(!<Graph<Leaf> as Trace>::NO_SCAN);
    assert!(!<Pair<u8, Gc<Leaf>> as Trace>::NO_SCAN);
    assert!(<Pair<u8, String> as Trace>::NO_SCAN);
    assert!(<FileHandle as Trace>::NO_SCAN);
    assert!(!<Open as Trace>::NO_SCAN);
    // A `GcCell` of plain data holds no handle.
    assert!(<GcCell<u64> as Trace>::NO_SCAN);
};

fn leaf(id: u64) -> Gc<Leaf> {
    Gc::new(Leaf { id })
}

fn main() {
    let shared = leaf(1);
    let first = Node {
        id: 1,
        leaf: shared.clone(),
        next: GcSlot::new(None),
        children: GcCell::new(Vec::new()),
        parent: None,
        by_name: HashMap::new(),
        fixed: Box::new([]),
        label: String::from("first"),
    };
    assert_eq!(count_traced_edges(&first), 1); // only `leaf`
    let first = Gc::new(first);
    let second = Gc::new(Node {
        id: 2,
        leaf: shared.clone(),
        next: GcSlot::new(Some(first.clone())),
        children: GcCell::new(vec![first.clone(), first.clone()]),
        parent: None,
        by_name: HashMap::from([(String::from("one"), shared.clone())]),
        fixed: vec![leaf(2), leaf(3)].into_boxed_slice(),
        label: String::from("second"),
    });
    // 1 (leaf) + 1 (next) + 2 (children) + 0 (parent) + 1 (by_name) + 2 (fixed).
    assert_eq!(count_traced_edges(&*second), 7);
    // A cycle: first -> second -> first.
    first.next.store(Some(second.clone()));
    first.children.borrow_mut().push(second.clone());
    assert_eq!(count_traced_edges(&*first), 3);
    assert_eq!(first.next.load().unwrap().fixed[1].id, 3);
    assert_eq!(second.children.borrow()[0].label, "first");
    assert_eq!(second.by_name["one"].id, second.leaf.id);
    let child = Gc::new(Node {
        id: 3,
        leaf: shared.clone(),
        next: GcSlot::default(),
        children: GcCell::new(Vec::new()),
        parent: Some(second.clone()),
        by_name: HashMap::new(),
        fixed: Box::new([]),
        label: String::new(),
    });
    assert_eq!(child.parent.as_ref().map(|p| p.id), Some(2));
    assert_eq!(first.id + second.id + child.id, 6);

    let empty = Gc::new(Tree::Empty);
    let tree = Gc::new(Tree::Branch {
        left: GcSlot::new(Some(Gc::new(Tree::Leaf(shared.clone())))),
        right: Some(empty),
        weight: 1,
    });
    assert_eq!(count_traced_edges(&*tree), 2);
    if let Tree::Branch { left, weight, .. } = &*tree {
        assert!(matches!(&*left.load().unwrap(), Tree::Leaf(l) if l.id == 1));
        assert_eq!(*weight, 1);
    }

    let graph = Gc::new(Graph {
        nodes: GcCell::new(vec![first.clone(), second.clone()]),
        index: HashMap::from([(String::from("child"), child.clone())]),
        root: GcSlot::new(Some(first.clone())),
        pinned: Box::new([child.clone()]),
    });
    assert_eq!(count_traced_edges(&*graph), 5);
    assert_eq!(graph.root.load().unwrap().id, 1);
    assert_eq!(graph.index["child"].id, graph.pinned[0].id);
    assert_eq!(graph.nodes.borrow().len(), 2);

    let pair = Gc::new(Pair(7u8, Some(shared.clone())));
    assert_eq!(count_traced_edges(&*pair), 1);
    assert_eq!(pair.0, 7);

    let file = Gc::new(FileHandle { fd: 3 });
    let open = Gc::new(Open {
        file: FileHandle { fd: 4 },
        owner: shared.clone(),
    });
    assert_eq!(count_traced_edges(&*open), 1);
    assert_eq!(file.fd + open.file.fd, 7);
    assert_eq!(open.owner.id, 1);

    // Everything above becomes garbage, cycles included; the collector runs the two
    // `FileHandle` destructors.
    drop((shared, first, second, child, tree, graph, pair, file, open));
    assert_eq!(CLOSED.load(Ordering::Relaxed), 0);
    gc_core::collect();
    assert_eq!(CLOSED.load(Ordering::Relaxed), 2);
}
