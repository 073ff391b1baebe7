//! The README demo: a tour of gc-core's API.
//!
//! 1. A cycle that `Rc` leaks, collected.
//! 2. `GcCell` (any mutable content) and `GcSlot` (one atomic edge).
//! 3. A DOM-like tree with parent pointers, shared with other threads.
//! 4. A garbage ring of 100,000 nodes, collected in one cycle.
//! 5. The collector's statistics.

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use gc_core::{Gc, GcCell, GcSlot, Trace};

/// A payload with a destructor, to watch the collector free things. `#[gc(no_scan)]`: it
/// holds no handle, so it may implement `Drop`.
#[derive(Trace)]
#[gc(no_scan)]
struct Tracked {
    name: String,
    #[gc(skip)]
    drops: Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// A node with one mutable edge and any number of children.
#[derive(Trace)]
struct Node {
    payload: Tracked,
    next: GcSlot<Node>,
    children: GcCell<Vec<Gc<Node>>>,
}

fn node(name: &str, drops: &Arc<AtomicUsize>) -> Gc<Node> {
    Gc::new(Node {
        payload: Tracked {
            name: name.to_string(),
            drops: drops.clone(),
        },
        next: GcSlot::new(None),
        children: GcCell::new(Vec::new()),
    })
}

/// An element of a DOM-like tree: children own nothing special, the parent pointer is an
/// ordinary edge. With `Rc` the parent would have to be a `Weak`.
#[derive(Trace)]
struct Element {
    tag: String,
    parent: GcSlot<Element>,
    children: GcCell<Vec<Gc<Element>>>,
}

fn element(tag: &str) -> Gc<Element> {
    Gc::new(Element {
        tag: tag.into(),
        parent: GcSlot::new(None),
        children: GcCell::default(),
    })
}

fn append(parent: &Gc<Element>, child: Gc<Element>) {
    child.parent.store(Some(parent.clone()));
    parent.children.borrow_mut().push(child);
}

fn path(e: &Gc<Element>) -> String {
    let mut parts = vec![e.tag.clone()];
    let mut cur = e.parent.load();
    while let Some(p) = cur {
        parts.push(p.tag.clone());
        cur = p.parent.load();
    }
    parts.reverse();
    parts.join(" > ")
}

fn main() {
    let drops = Arc::new(AtomicUsize::new(0));

    println!("1. A two-node cycle");
    {
        // With Rc, a <-> b leaks: each keeps the other's count above zero.
        struct RcNode(std::cell::RefCell<Option<Rc<RcNode>>>);
        let a = Rc::new(RcNode(Default::default()));
        let b = Rc::new(RcNode(Some(a.clone()).into()));
        *a.0.borrow_mut() = Some(b.clone());
        let weak = Rc::downgrade(&a);
        drop((a, b));
        println!(
            "   Rc:  after dropping both handles, still alive: {}",
            weak.upgrade().is_some()
        );
        // Break the Rc cycle by hand so the tour itself does not leak.
        if let Some(a) = weak.upgrade() {
            a.0.borrow_mut().take();
        }

        let a = node("a", &drops);
        let b = node("b", &drops);
        a.next.store(Some(b.clone()));
        b.next.store(Some(a.clone()));
        drop((a, b));
        gc_core::collect();
        println!(
            "   Gc:  after dropping both handles and collect(): {} dropped",
            drops.load(Ordering::Relaxed)
        );
    }

    println!("2. GcCell and GcSlot");
    {
        let root = node("root", &drops);
        for i in 0..3 {
            root.children
                .borrow_mut()
                .push(node(&format!("child{i}"), &drops));
        }
        let names: Vec<String> = root
            .children
            .borrow()
            .iter()
            .map(|c| c.payload.name.clone())
            .collect();
        println!("   children: {names:?}");
        match root.children.try_borrow_mut() {
            Ok(mut v) => {
                // Content moved out while borrowed is a rooted handle: it survives collections.
                let last = v.pop().expect("three children");
                drop(v);
                gc_core::collect();
                println!(
                    "   popped {} and it survived a collection",
                    last.payload.name
                );
            }
            Err(e) => println!("   unexpected: {e}"),
        }
        let held = root.children.borrow();
        let err = root
            .children
            .try_borrow_mut()
            .err()
            .expect("a shared borrow is held");
        println!("   try_borrow_mut while borrowed: Err({err})");
        drop(held);
        let old = root.next.swap(Some(node("next", &drops)));
        println!(
            "   GcSlot::swap returned {:?}",
            old.map(|n| n.payload.name.clone())
        );
        let cur = root.next.load().map(|n| n.payload.name.clone());
        println!("   GcSlot::load: {cur:?}");
    }

    println!("3. A tree with parent pointers, used from other threads");
    {
        let html = element("html");
        let body = element("body");
        append(&html, body.clone());
        let main = element("main");
        append(&body, main.clone());
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let main = main.clone();
                std::thread::spawn(move || {
                    let p = element(&format!("p{t}"));
                    append(&main, p.clone());
                    path(&p)
                })
            })
            .collect();
        for h in handles {
            println!("   from a thread: {}", h.join().expect("thread"));
        }
        println!("   main has {} children", main.children.borrow().len());
    }
    gc_core::collect();

    println!("4. A 100,000-node garbage ring");
    {
        let before = drops.load(Ordering::Relaxed);
        let first = node("ring0", &drops);
        let mut prev = first.clone();
        for i in 1..100_000 {
            let n = node(&format!("ring{i}"), &drops);
            prev.next.store(Some(n.clone()));
            prev = n;
        }
        prev.next.store(Some(first.clone()));
        drop((first, prev));
        gc_core::collect();
        println!(
            "   dropped by collect(): {}",
            drops.load(Ordering::Relaxed) - before
        );
    }

    println!("5. Statistics");
    for line in gc_core::stats().to_string().lines() {
        println!("   {line}");
    }
}
