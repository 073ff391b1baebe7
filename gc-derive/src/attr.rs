//! The `#[gc(...)]` attributes, and the error accumulator.
//!
//! Three keys exist: `skip` and `recursive` on a field, `no_scan` on the type. Anything else
//! (an unknown key, a known key in the wrong place, arguments, `#[gc]` without a list) is a
//! spanned
//! [`syn::Error`] whose message says what to write instead. Errors are collected in an
//! [`Errors`] rather than returned at the first one, so the user sees all of them in one
//! build, as serde_derive's `Ctxt` does.

use proc_macro2::Span;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Meta, Token};

/// What the keys mean, for the error messages.
const VALID_KEYS: &str = "expected `skip` (on a field: do not trace it), `recursive` (on a field \
                          whose type leads back to this one: do not ask it for `NO_SCAN`) or \
                          `no_scan` (on the type: it holds no traced handle)";

/// The message for a `gc` attribute that is not a list of keys.
const MALFORMED: &str =
    "malformed `gc` attribute: write `#[gc(skip)]` on a field or `#[gc(no_scan)]` on the type";

/// Accumulates errors so that every problem in the input is reported at once.
#[derive(Default)]
pub(crate) struct Errors {
    combined: Option<syn::Error>,
}

impl Errors {
    /// Records an error at `span`.
    pub(crate) fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push_error(syn::Error::new(span, message));
    }

    /// Records an existing error (for example a parse error).
    pub(crate) fn push_error(&mut self, error: syn::Error) {
        match &mut self.combined {
            Some(combined) => combined.combine(error),
            None => self.combined = Some(error),
        }
    }

    /// `Err` with every recorded error, or `Ok` if there was none.
    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.combined {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// The attributes of the deriving type.
#[derive(Default)]
pub(crate) struct TypeAttrs {
    /// `#[gc(no_scan)]`: the type holds no traced handle.
    pub(crate) no_scan: bool,
}

/// The attributes of one field.
#[derive(Default)]
pub(crate) struct FieldAttrs {
    /// `#[gc(skip)]`: the field is neither traced nor rooted/unrooted.
    pub(crate) skip: bool,
    /// `#[gc(recursive)]`: the field's type leads back to the deriving type, so its
    /// `NO_SCAN` cannot be evaluated (it would be a cycle); it counts as `false`.
    pub(crate) recursive: bool,
}

/// The keys `#[gc(...)]` accepts.
#[derive(Clone, Copy, PartialEq)]
enum Key {
    Skip,
    Recursive,
    NoScan,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::Skip => "skip",
            Key::Recursive => "recursive",
            Key::NoScan => "no_scan",
        }
    }
}

/// Parses every `#[gc(...)]` in `attrs` and returns the well-formed keys with their spans.
/// Malformed attributes and unknown keys are reported to `errors` and left out.
fn keys(attrs: &[Attribute], errors: &mut Errors) -> Vec<(Key, Span)> {
    let mut found = Vec::new();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("gc")) {
        let list = match &attr.meta {
            Meta::List(list) => list,
            other => {
                errors.push(other.span(), MALFORMED);
                continue;
            }
        };
        let metas = match list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated) {
            Ok(metas) => metas,
            Err(error) => {
                errors.push(error.span(), MALFORMED);
                continue;
            }
        };
        if metas.is_empty() {
            errors.push(list.span(), format_args!("empty `#[gc()]`: {VALID_KEYS}"));
        }
        for meta in metas {
            let path = meta.path();
            let key = if path.is_ident("skip") {
                Key::Skip
            } else if path.is_ident("recursive") {
                Key::Recursive
            } else if path.is_ident("no_scan") {
                Key::NoScan
            } else {
                let name = path_to_string(path);
                errors.push(
                    path.span(),
                    format_args!("unknown `gc` attribute `{name}`: {VALID_KEYS}"),
                );
                continue;
            };
            if !matches!(meta, Meta::Path(_)) {
                let name = key.name();
                errors.push(
                    meta.span(),
                    format_args!("`{name}` takes no arguments: write `#[gc({name})]`"),
                );
                continue;
            }
            if found.iter().any(|&(seen, _)| seen == key) {
                let name = key.name();
                errors.push(
                    path.span(),
                    format_args!("duplicate `{name}`: remove this one"),
                );
                continue;
            }
            found.push((key, path.span()));
        }
    }
    found
}

fn path_to_string(path: &syn::Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    segments.join("::")
}

/// Reads the attributes of the deriving type.
pub(crate) fn type_attrs(attrs: &[Attribute], errors: &mut Errors) -> TypeAttrs {
    let mut parsed = TypeAttrs::default();
    for (key, span) in keys(attrs, errors) {
        match key {
            Key::NoScan => parsed.no_scan = true,
            Key::Skip => errors.push(
                span,
                "`#[gc(skip)]` goes on a field, not on the type: put it on each field that \
                 should not be traced, or write `#[gc(no_scan)]` if the type holds no traced \
                 handle at all",
            ),
            Key::Recursive => errors.push(
                span,
                "`#[gc(recursive)]` goes on a field, not on the type: put it on the field whose \
                 type leads back to this type (for example `children: Vec<Other>` where \
                 `Other` holds this type)",
            ),
        }
    }
    parsed
}

/// Reads the attributes of one field.
pub(crate) fn field_attrs(attrs: &[Attribute], errors: &mut Errors) -> FieldAttrs {
    let mut parsed = FieldAttrs::default();
    for (key, span) in keys(attrs, errors) {
        match key {
            Key::Skip => parsed.skip = true,
            Key::Recursive => parsed.recursive = true,
            Key::NoScan => errors.push(
                span,
                "`#[gc(no_scan)]` goes on the type, not on a field: write `#[gc(skip)]` to \
                 leave this field untraced, or put `#[gc(no_scan)]` above the type if it \
                 holds no traced handle at all",
            ),
        }
    }
    parsed
}

/// Rejects `#[gc(...)]` on an enum variant (the compiler accepts any helper attribute
/// there, so without this check it would be silently ignored).
pub(crate) fn variant_attrs(attrs: &[Attribute], errors: &mut Errors) {
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("gc")) {
        errors.push(
            attr.meta.path().span(),
            "`#[gc(...)]` is not supported on an enum variant: put `#[gc(skip)]` on the \
             variant's fields, or `#[gc(no_scan)]` on the enum",
        );
    }
}
