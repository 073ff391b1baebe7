//! From the parsed input to the generated `unsafe impl Trace`.
//!
//! # Model
//!
//! The input is first turned into a small model ([`Input`]): the type's attributes, and
//! for each variant (a struct is one variant, named `None`) its fields, each with its
//! member (`name` or `0`), its type, whether it is skipped, and whether it is recursive
//! (its type names the deriving type, or it is marked `#[gc(recursive)]`). Every problem
//! found while building the model is pushed to an [`Errors`]; nothing is generated if
//! there is any.
//!
//! # Output
//!
//! ```text
//! const _: () = {
//!     unsafe impl<..> ::gc_core::Trace for Type<..> where <bounds> {
//!         // `false` instead of `<F as Trace>::NO_SCAN` for a recursive field
//!         const NO_SCAN: bool = true && <F1 as Trace>::NO_SCAN && ...;
//!         fn trace(&self, t)   { <visit each traced field> }
//!         fn root(&mut self)   { <visit each traced field> }
//!         unsafe fn unroot(..) { <visit each traced field, one unsafe block each> }
//!     }
//!     // without #[gc(no_scan)]: Drop on Type conflicts with the blanket impl for T: Drop
//!     impl<..> ::gc_core::__private::RemoveDropImplOrMarkTypeGcNoScan for Type<..> {}
//!     // with #[gc(no_scan)]: one assertion per field that does not depend on generics
//!     const _: () = ::core::assert!(<F as ::gc_core::Trace>::NO_SCAN, "...");
//! };
//! ```
//!
//! A struct visits `&self.member`; an enum matches `Self::Variant { member: binding, .. }`
//! (brace patterns work for tuple and unit variants too). Every path is absolute, down to
//! `::core::primitive::bool`, so local items named `Trace`, `core` or `bool` cannot capture
//! it. The local names (`__gc_tracer`, `__gc_field_N`) carry `Span::mixed_site()`; as for
//! any derive on stable Rust, a *constant* of the same name in scope would still turn such
//! a binding into a pattern, so `__gc_`-prefixed names are reserved.
//!
//! With `#[gc(no_scan)]` the methods are empty and `NO_SCAN` is `true`. Fields whose type
//! depends on a generic parameter are asserted inside `NO_SCAN`'s initializer, which is
//! evaluated for every instantiation whose `NO_SCAN` is used (allocating a `Gc` of it, or
//! tracing a container of it). A recursive field of a generic type is not asserted: the
//! assertion would ask for the `NO_SCAN` being defined. (That check is a promise kept for
//! the user, not a safety net: a `no_scan` type never unroots anything, so a handle it
//! holds anyway stays rooted.)

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, Member, Type};

use crate::attr::{self, Errors};
use crate::bounds;

/// The parsed input.
struct Input<'a> {
    ident: &'a Ident,
    no_scan: bool,
    /// Whether the input is an enum (and so needs a `match`), even with one variant.
    is_enum: bool,
    variants: Vec<Variant<'a>>,
}

/// A struct's body, or one enum variant.
struct Variant<'a> {
    /// `None` for a struct.
    ident: Option<&'a Ident>,
    fields: Vec<Field<'a>>,
}

/// One field.
struct Field<'a> {
    member: Member,
    ty: &'a Type,
    skip: bool,
    /// Its `NO_SCAN` depends on the deriving type's own `NO_SCAN`: do not evaluate it.
    recursive: bool,
}

impl Field<'_> {
    /// How the error messages name the field.
    fn describe(&self, variant: Option<&Ident>) -> String {
        let member = match &self.member {
            Member::Named(ident) => ident.to_string(),
            Member::Unnamed(index) => index.index.to_string(),
        };
        match variant {
            Some(variant) => format!("field `{member}` of variant `{variant}`"),
            None => format!("field `{member}`"),
        }
    }
}

/// Expands `#[derive(Trace)]` on `input`.
pub(crate) fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let model = parse(input)?;
    Ok(generate(input, &model))
}

/// Builds the model, collecting every error.
fn parse(input: &DeriveInput) -> syn::Result<Input<'_>> {
    let mut errors = Errors::default();
    let type_attrs = attr::type_attrs(&input.attrs, &mut errors);
    bounds::reject_lifetimes(&input.generics, &mut errors);

    let (is_enum, variants) = match &input.data {
        Data::Struct(data) => (
            false,
            vec![Variant {
                ident: None,
                fields: fields(&input.ident, &data.fields, &mut errors),
            }],
        ),
        Data::Enum(data) => {
            let variants = data
                .variants
                .iter()
                .map(|variant| {
                    attr::variant_attrs(&variant.attrs, &mut errors);
                    Variant {
                        ident: Some(&variant.ident),
                        fields: fields(&input.ident, &variant.fields, &mut errors),
                    }
                })
                .collect();
            (true, variants)
        }
        Data::Union(data) => {
            errors.push(
                data.union_token.span(),
                "`#[derive(Trace)]` does not support unions: the collector could not know which \
                 field holds a value. Use an enum, or, if no field can hold a traced handle, \
                 write `unsafe impl Trace` by hand with `NO_SCAN = true` and empty methods",
            );
            (false, Vec::new())
        }
    };

    if !type_attrs.no_scan {
        if let Some(span) = packed_repr(input) {
            errors.push(
                span,
                "`#[derive(Trace)]` does not support `#[repr(packed)]` types that are traced: \
                 tracing borrows every field, and a packed field cannot be borrowed. Remove \
                 `packed`, or mark the type `#[gc(no_scan)]` if it holds no traced handle",
            );
        }
    }

    errors.finish()?;
    Ok(Input {
        ident: &input.ident,
        no_scan: type_attrs.no_scan,
        is_enum,
        variants,
    })
}

/// The fields of a struct or variant of the type `ident`, with their attributes.
fn fields<'a>(ident: &Ident, fields: &'a Fields, errors: &mut Errors) -> Vec<Field<'a>> {
    fields
        .members()
        .zip(fields.iter())
        .map(|(member, field)| {
            let attrs = attr::field_attrs(&field.attrs, errors);
            Field {
                member,
                ty: &field.ty,
                skip: attrs.skip,
                recursive: attrs.recursive || bounds::refers_to(&field.ty, ident),
            }
        })
        .collect()
}

/// The span of `packed` in a `#[repr(...)]` of `input`, if there is one.
fn packed_repr(input: &DeriveInput) -> Option<Span> {
    let mut found = None;
    for attr in input
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("repr"))
    {
        // A malformed `repr` is rustc's to report; only look for `packed`.
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("packed") {
                found = Some(meta.path.span());
            }
            if meta.input.peek(syn::token::Paren) {
                let _content;
                syn::parenthesized!(_content in meta.input);
            }
            Ok(())
        });
    }
    found
}

/// Which of the three visits a method body performs.
#[derive(Clone, Copy)]
enum Visit {
    Trace,
    Root,
    Unroot,
}

fn generate(input: &DeriveInput, model: &Input<'_>) -> TokenStream {
    let ident = model.ident;
    let traced: Vec<(&Variant<'_>, &Field<'_>)> = model
        .variants
        .iter()
        .flat_map(|variant| variant.fields.iter().map(move |field| (variant, field)))
        .filter(|(_, field)| !field.skip)
        .collect();
    let traced_types: Vec<&Type> = traced.iter().map(|(_, field)| field.ty).collect();
    let generics = bounds::with_trace_bounds(&input.generics, &traced_types);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();

    let tracer = Ident::new("__gc_tracer", Span::mixed_site());

    // `NEEDS_DROP`: a `no_scan` type may implement `Drop`, so it asks the compiler; otherwise
    // (no `Drop` impl allowed) it is the OR of the traced fields' `NEEDS_DROP` and of the
    // skipped fields' drop glue. Unlike `NO_SCAN`, a recursive field's `NEEDS_DROP` cannot
    // depend on this constant: the type can only contain itself through an indirection
    // (`Box`, `Vec`, `Gc`, ...), and those do not delegate `NEEDS_DROP` to their content.
    let needs_drop = if model.no_scan {
        quote! { ::core::mem::needs_drop::<Self>() }
    } else {
        let terms = model
            .variants
            .iter()
            .flat_map(|v| v.fields.iter())
            .map(|field| {
                let ty = field.ty;
                if field.skip {
                    quote_spanned! {ty.span()=> ::core::mem::needs_drop::<#ty>() }
                } else {
                    quote_spanned! {ty.span()=> <#ty as ::gc_core::Trace>::NEEDS_DROP }
                }
            });
        quote! { false #(|| #terms)* }
    };

    let (no_scan, trace, root, unroot, extra) = if model.no_scan {
        let mut in_impl = Vec::new();
        let mut free = Vec::new();
        for (variant, field) in &traced {
            let ty = field.ty;
            let message = format!(
                "`{ident}` is `#[gc(no_scan)]`, but its {} can hold a traced handle (its type's \
                 `Trace::NO_SCAN` is false): mark the field `#[gc(skip)]` (it is then never \
                 traced, and any handle in it stays rooted), or remove `#[gc(no_scan)]`",
                field.describe(variant.ident)
            )
            .replace('{', "{{")
            .replace('}', "}}");
            let check = quote_spanned! {ty.span()=>
                ::core::assert!(<#ty as ::gc_core::Trace>::NO_SCAN, #message)
            };
            if bounds::mentions_generics(ty, &input.generics) {
                if !field.recursive {
                    in_impl.push(check);
                }
            } else {
                free.push(quote_spanned! {ty.span()=> const _: () = #check; });
            }
        }
        (
            quote! { { #(#in_impl;)* true } },
            TokenStream::new(),
            TokenStream::new(),
            TokenStream::new(),
            quote! { #(#free)* },
        )
    } else {
        let field_no_scan = traced.iter().map(|(_, field)| {
            if field.recursive {
                quote! { false }
            } else {
                let ty = field.ty;
                quote_spanned! {ty.span()=> <#ty as ::gc_core::Trace>::NO_SCAN }
            }
        });
        // No `if Self::NO_SCAN { return; }` in front: every field's impl already returns
        // early when it is noscan, the calls are `#[inline]`, and asking for `Self: Trace`
        // there would repeat every `Send`/`Sync` error at the derive.
        let body = |visit| {
            if traced.is_empty() {
                TokenStream::new()
            } else {
                visit_fields(model, visit, &tracer)
            }
        };
        (
            quote! { true #(&& #field_no_scan)* },
            body(Visit::Trace),
            body(Visit::Root),
            body(Visit::Unroot),
            // The guard of rule 5: the blanket impl for every `T: Drop` in
            // `gc_core::__private` conflicts with this one if the user implements `Drop` for
            // the type, so such a type does not compile.
            quote_spanned! {ident.span()=>
                #[automatically_derived]
                impl #impl_generics ::gc_core::__private::RemoveDropImplOrMarkTypeGcNoScan
                    for #ident #ty_generics #where_clause {}
            },
        )
    };

    // SAFETY: the generated impl satisfies every rule of `gc_core::Trace`:
    // (1) `trace` visits every field that is not `#[gc(skip)]`, in every variant, through
    //     the field type's own `Trace` impl, which reports that field's handles.
    // (2) `root` and `unroot` visit exactly the same fields with the same impls. A skipped
    //     field is visited by none of the three, so its handles are never unrooted and stay
    //     rooted (rule 6): a leak at worst, never a premature free.
    // (3) `NO_SCAN` is the AND of the visited fields' `NO_SCAN`, a recursive field counting
    //     as `false` (always allowed); so when it is `true`, every field's visit is a no-op
    //     and so is the whole method. With `#[gc(no_scan)]` the methods are empty and
    //     `NO_SCAN` is `true`: nothing is ever unrooted, so a handle the type held anyway
    //     would stay rooted (and the per-field assertions rule that out at compile time).
    // (4) The derive adds no interior mutability; the fields' impls uphold rule 4.
    // (5) Without `#[gc(no_scan)]`, the `RemoveDropImplOrMarkTypeGcNoScan` impl makes a
    //     `Drop` impl on the type a compile error. With it, nothing in the value is ever
    //     unrooted, so every handle a destructor could reach is rooted: its target is alive.
    // (6) The type is not a handle type. (7) The methods only call the fields' methods.
    // `Send + Sync + 'static` are supertraits, checked by the compiler.
    quote! {
        const _: () = {
            #[automatically_derived]
            unsafe impl #impl_generics ::gc_core::Trace for #ident #ty_generics #where_clause {
                const NO_SCAN: ::core::primitive::bool = #no_scan;
                const NEEDS_DROP: ::core::primitive::bool = #needs_drop;

                #[inline]
                fn trace(&self, #tracer: &mut ::gc_core::Tracer) {
                    #trace
                }

                #[inline]
                fn root(&mut self) {
                    #root
                }

                #[inline]
                unsafe fn unroot(&mut self) {
                    #unroot
                }
            }

            #extra
        };
    }
}

/// The calls of one method on every traced field: direct field accesses for a struct, a
/// `match` over the variants for an enum.
fn visit_fields(model: &Input<'_>, visit: Visit, tracer: &Ident) -> TokenStream {
    let call = |place: TokenStream, ty: &Type| -> TokenStream {
        match visit {
            Visit::Trace => quote_spanned! {ty.span()=>
                ::gc_core::Trace::trace(#place, #tracer);
            },
            Visit::Root => quote_spanned! {ty.span()=>
                ::gc_core::Trace::root(#place);
            },
            Visit::Unroot => {
                let call = quote_spanned! {ty.span()=> ::gc_core::Trace::unroot(#place) };
                // SAFETY (of the generated block): the field is part of `*self`, so the
                // guarantee the caller of `unroot` gives for `*self` covers it.
                quote! { unsafe { #call }; }
            }
        }
    };

    if !model.is_enum {
        let calls = model
            .variants
            .iter()
            .flat_map(|variant| &variant.fields)
            .filter(|f| !f.skip);
        return calls
            .map(|field| {
                let member = &field.member;
                // Spanned at the field, like the `NO_SCAN` term: a field type that is not
                // `Trace` is then reported at the field rather than at the derive.
                let ty = field.ty;
                let place = match visit {
                    Visit::Trace => quote_spanned! {ty.span()=> &self.#member },
                    Visit::Root | Visit::Unroot => quote_spanned! {ty.span()=> &mut self.#member },
                };
                call(place, field.ty)
            })
            .collect();
    }

    // Never empty here: the caller only visits when some field is traced.
    let arms = model.variants.iter().map(|variant| {
        let name = variant.ident;
        let traced: Vec<(Ident, &Field<'_>)> = variant
            .fields
            .iter()
            .enumerate()
            .filter(|(_, field)| !field.skip)
            .map(|(i, field)| {
                (
                    format_ident!("__gc_field_{}", i, span = Span::mixed_site()),
                    field,
                )
            })
            .collect();
        let members = traced.iter().map(|(_, field)| &field.member);
        let bindings = traced.iter().map(|(binding, _)| binding);
        let calls = traced
            .iter()
            .map(|(binding, field)| call(quote!(#binding), field.ty));
        quote! {
            Self::#name { #(#members: #bindings,)* .. } => { #(#calls)* }
        }
    });
    quote! {
        match self {
            #(#arms)*
        }
    }
}
