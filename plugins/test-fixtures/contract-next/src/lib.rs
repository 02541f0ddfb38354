//! A plugin exporting `occopus:plugin/driver@1.0.0` and
//! `occopus:plugin/config-manager@1.0.0`.

wit_bindgen::generate!({ path: "wit", world: "driver-plugin" });

struct Next;

impl exports::occopus::plugin::driver::Guest for Next {
    fn describe() -> String {
        "next".into()
    }
}

impl exports::occopus::plugin::config_manager::Guest for Next {
    fn describe() -> String {
        "next".into()
    }
}

export!(Next);
