//! A driver exporting `occopus:plugin/driver@1.0.0`.

wit_bindgen::generate!({ path: "wit", world: "driver-plugin" });

struct Next;

impl exports::occopus::plugin::driver::Guest for Next {
    fn describe() -> String {
        "next".into()
    }
}

export!(Next);
