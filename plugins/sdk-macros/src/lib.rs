//! Proc macro behind `wasmon_sdk::export_collector!`, `export_rule!` and `export_sink!`.
//!
//! It expands, in the plugin's crate, to a `wit_bindgen::generate!` of the chosen
//! world with the WIT text inlined (so a plugin crate needs no copy of `wit/`),
//! the shared interfaces mapped onto the bindings `wasmon_sdk` already generated,
//! and a `Guest` impl that forwards to the SDK's runtime helpers.

use proc_macro::TokenStream;

/// The current WIT package (`wit/0.2.0`), read when this crate is compiled.
const WIT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../wit/0.2.0/plugin.wit"
));

/// `export_world!(collector, path::To::Type)`: see the crate docs.
#[proc_macro]
pub fn export_world(input: TokenStream) -> TokenStream {
    let text = input.to_string();
    let Some((world, ty)) = text.split_once(',') else {
        return compile_error("expected `WORLD, TYPE`");
    };
    let world = world.trim();
    let ty = ty.trim();
    let guest = match world {
        "collector" => {
            "fn init() -> ::core::result::Result<(), ::wasmon_sdk::Error> {
                 ::wasmon_sdk::__private::init::<super::WasmonPlugin>(<super::WasmonPlugin as ::wasmon_sdk::Collector>::init)
             }
             fn collect() -> ::core::result::Result<::std::vec::Vec<::wasmon_sdk::Sample>, ::wasmon_sdk::Error> {
                 ::wasmon_sdk::__private::with(|p: &mut super::WasmonPlugin| ::wasmon_sdk::Collector::collect(p))
             }
             fn on_message(message: ::wasmon_sdk::Message) -> ::core::result::Result<::std::vec::Vec<::wasmon_sdk::Sample>, ::wasmon_sdk::Error> {
                 ::wasmon_sdk::__private::with(|p: &mut super::WasmonPlugin| ::wasmon_sdk::Collector::on_message(p, message))
             }"
        }
        "rule" => {
            "fn init() -> ::core::result::Result<(), ::wasmon_sdk::Error> {
                 ::wasmon_sdk::__private::init::<super::WasmonPlugin>(<super::WasmonPlugin as ::wasmon_sdk::Rule>::init)
             }
             fn evaluate(input: ::wasmon_sdk::RuleInput) -> ::core::result::Result<::std::vec::Vec<::wasmon_sdk::Alert>, ::wasmon_sdk::Error> {
                 ::wasmon_sdk::__private::with(|p: &mut super::WasmonPlugin| ::wasmon_sdk::Rule::evaluate(p, input))
             }"
        }
        "sink" => {
            "fn init() -> ::core::result::Result<(), ::wasmon_sdk::Error> {
                 ::wasmon_sdk::__private::init::<super::WasmonPlugin>(<super::WasmonPlugin as ::wasmon_sdk::Sink>::init)
             }
             fn deliver(batch: ::std::vec::Vec<::wasmon_sdk::Event>) -> ::core::result::Result<(), ::wasmon_sdk::DeliveryError> {
                 ::wasmon_sdk::__private::with_delivery(|p: &mut super::WasmonPlugin| ::wasmon_sdk::Sink::deliver(p, batch))
             }"
        }
        other => return compile_error(&format!("unknown world `{other}`: expected collector, rule or sink")),
    };
    let expanded = format!(
        r#"
        #[doc(hidden)]
        type WasmonPlugin = {ty};
        #[doc(hidden)]
        #[allow(clippy::all)]
        mod __wasmon_export {{
            ::wasmon_sdk::__private::wit_bindgen::generate!({{
                inline: {wit:?},
                world: "{world}",
                runtime_path: "::wasmon_sdk::__private::wit_bindgen::rt",
                with: {{
                    "wasmon:plugin/types@0.2.0": ::wasmon_sdk::wit::types,
                    "wasmon:plugin/host@0.2.0": ::wasmon_sdk::wit::host,
                    "wasmon:plugin/http@0.2.0": ::wasmon_sdk::wit::http,
                    "wasmon:plugin/redis@0.2.0": ::wasmon_sdk::wit::redis,
                    "wasmon:plugin/rabbitmq@0.2.0": ::wasmon_sdk::wit::rabbitmq,
                }},
            }});
            struct Export;
            impl Guest for Export {{
                {guest}
            }}
            export!(Export);
        }}
        "#,
        wit = WIT,
    );
    expanded
        .parse()
        .unwrap_or_else(|e| compile_error(&format!("wasmon-sdk-macros: {e}")))
}

fn compile_error(message: &str) -> TokenStream {
    format!("::core::compile_error!({message:?});")
        .parse()
        .unwrap_or_default()
}
