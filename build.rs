fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // A fresh machine has no protoc; use the one shipped in the vendored crate
    // unless the builder points PROTOC somewhere else.
    if std::env::var_os("PROTOC").is_none() {
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&["proto/promptgate/guard/v1/guard.proto"], &["proto"])?;
    Ok(())
}
