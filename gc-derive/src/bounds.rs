//! Generic parameters: which bounds the generated impls get, and which field types
//! depend on them.
//!
//! # The bound rule
//!
//! A type parameter that appears in the type of a traced (not skipped) field gets
//! `T: ::gc_core::Trace`, because the generated code calls `Trace` methods on that field.
//! A type parameter that appears only in skipped fields gets
//! `T: Send + Sync + 'static` instead: its values are never visited, but the type must
//! still be a valid GC payload. The bounds go into the `where` clause, after the user's
//! own predicates, so existing bounds are kept as written. Const parameters need nothing.
//!
//! Lifetime parameters are an error: `Trace: 'static`, so the impl could only exist for
//! `'static` arguments, and saying that plainly beats rustc's "lifetime may not live long
//! enough" inside generated code.
//!
//! # Dependence on parameters
//!
//! [`mentions_generics`] tells whether a field type names a type or const parameter (or
//! `Self`). The `#[gc(no_scan)]` check of such a field cannot be a free `const` item (it
//! would have no parameters in scope), so it moves into the impl.
//!
//! # Recursion
//!
//! [`refers_to`] tells whether a field type names the deriving type itself (`Box<Expr>`
//! inside `Expr`, `Vec<Self>`). Such a field's `NO_SCAN` is the type's own `NO_SCAN`, and
//! rustc cannot evaluate a constant that depends on itself ("cycle detected when
//! elaborating drops"), so the derive does not ask: the field counts as `false`
//! (conservative: the type is scanned). The match is syntactic, on any path segment, so a
//! same-named type from another module also counts, which only costs scanning.

use std::collections::HashSet;

use proc_macro2::Ident;
use syn::visit::Visit;
use syn::{parse_quote, GenericParam, Generics, Type};

use crate::attr::Errors;

/// Reports every lifetime parameter of the deriving type as an error.
pub(crate) fn reject_lifetimes(generics: &Generics, errors: &mut Errors) {
    for lifetime in generics.lifetimes() {
        errors.push(
            lifetime.lifetime.span(),
            format_args!(
                "`#[derive(Trace)]` does not support lifetime parameters such as `{}`: a GC \
                 object lives until a collection frees it, not until a borrow ends, so \
                 `Trace` requires `'static`. Store owned data (`String`, `Box<T>`, `Vec<T>`), \
                 `&'static` references, or `Gc<T>` instead of borrowing",
                lifetime.lifetime
            ),
        );
    }
}

/// `generics` with the bounds of the module doc added for the given traced field types.
pub(crate) fn with_trace_bounds(generics: &Generics, traced: &[&Type]) -> Generics {
    let type_params: Vec<&Ident> = generics.type_params().map(|param| &param.ident).collect();
    if type_params.is_empty() {
        return generics.clone();
    }
    let mut used = Mentions::new(&type_params);
    for ty in traced {
        used.visit_type(ty);
    }
    let mut generics = generics.clone();
    let where_clause = generics.make_where_clause();
    for &param in &type_params {
        if used.all || used.found.contains(param) {
            where_clause
                .predicates
                .push(parse_quote!(#param: ::gc_core::Trace));
        } else {
            where_clause.predicates.push(parse_quote!(
                #param: ::core::marker::Send + ::core::marker::Sync + 'static
            ));
        }
    }
    generics
}

/// True if `ty` names a type or const parameter of `generics`, or `Self`.
pub(crate) fn mentions_generics(ty: &Type, generics: &Generics) -> bool {
    let params: Vec<&Ident> = generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Type(param) => Some(&param.ident),
            GenericParam::Const(param) => Some(&param.ident),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    let mut mentions = Mentions::new(&params);
    mentions.visit_type(ty);
    mentions.all || mentions.self_type || !mentions.found.is_empty()
}

/// Finds which of a set of parameter names a type mentions.
struct Mentions<'a> {
    params: &'a [&'a Ident],
    found: HashSet<Ident>,
    /// The type mentions `Self`.
    self_type: bool,
    /// The type contains a macro, whose expansion we cannot see: assume it mentions every
    /// parameter.
    all: bool,
}

impl<'a> Mentions<'a> {
    fn new(params: &'a [&'a Ident]) -> Self {
        Mentions {
            params,
            found: HashSet::new(),
            self_type: false,
            all: false,
        }
    }
}

impl<'ast> Visit<'ast> for Mentions<'_> {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            if let Some(first) = path.segments.first() {
                if first.ident == "Self" {
                    self.self_type = true;
                } else if let Some(param) = self.params.iter().find(|p| ***p == first.ident) {
                    self.found.insert((*param).clone());
                }
            }
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_type_macro(&mut self, _: &'ast syn::TypeMacro) {
        self.all = true;
    }
}

/// True if `ty` names `ident` in any path segment, or `Self`.
pub(crate) fn refers_to(ty: &Type, ident: &Ident) -> bool {
    struct Refers<'a> {
        ident: &'a Ident,
        found: bool,
    }
    impl<'ast> Visit<'ast> for Refers<'_> {
        fn visit_path_segment(&mut self, segment: &'ast syn::PathSegment) {
            if segment.ident == *self.ident || segment.ident == "Self" {
                self.found = true;
            }
            syn::visit::visit_path_segment(self, segment);
        }
    }
    let mut refers = Refers {
        ident,
        found: false,
    };
    refers.visit_type(ty);
    refers.found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generics(tokens: proc_macro2::TokenStream) -> Generics {
        let item: syn::ItemStruct = syn::parse2(tokens).unwrap();
        item.generics
    }

    #[test]
    fn finds_parameters_in_nested_types() {
        let g = generics(quote::quote!(
            struct S<T, U, const N: usize>(T, U);
        ));
        let yes: [Type; 6] = [
            parse_quote!(T),
            parse_quote!(Vec<Option<T>>),
            parse_quote!([u8; N]),
            parse_quote!(<U as Iterator>::Item),
            parse_quote!(Box<Self>),
            parse_quote!(my_macro!()),
        ];
        for ty in &yes {
            assert!(mentions_generics(ty, &g), "{}", quote::quote!(#ty));
        }
        let no: [Type; 3] = [parse_quote!(u8), parse_quote!(::T), parse_quote!(m::T)];
        for ty in &no {
            assert!(!mentions_generics(ty, &g), "{}", quote::quote!(#ty));
        }
    }

    #[test]
    fn finds_references_to_the_type_itself() {
        let ident: Ident = parse_quote!(Expr);
        let yes: [Type; 4] = [
            parse_quote!(Box<Expr>),
            parse_quote!(Vec<(u8, crate::ast::Expr)>),
            parse_quote!(Option<Box<Self>>),
            parse_quote!(<Expr as Tr>::Out),
        ];
        for ty in &yes {
            assert!(refers_to(ty, &ident), "{}", quote::quote!(#ty));
        }
        let no: [Type; 2] = [parse_quote!(Box<Expression>), parse_quote!(Vec<u8>)];
        for ty in &no {
            assert!(!refers_to(ty, &ident), "{}", quote::quote!(#ty));
        }
    }

    #[test]
    fn bounds_depend_on_traced_fields() {
        let g = generics(quote::quote!(
            struct S<T: Clone, U>(T, U)
            where
                T: Default;
        ));
        let t: Type = parse_quote!(Vec<T>);
        let out = with_trace_bounds(&g, &[&t]);
        let where_clause = out.where_clause.unwrap();
        let predicates: Vec<String> = where_clause
            .predicates
            .iter()
            .map(|p| quote::quote!(#p).to_string().replace(' ', ""))
            .collect();
        assert_eq!(
            predicates,
            [
                "T:Default",
                "T:::gc_core::Trace",
                "U:::core::marker::Send+::core::marker::Sync+'static"
            ]
        );
    }
}
