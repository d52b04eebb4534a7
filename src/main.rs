fn main() {
    std::process::exit(camada::cli::main());
}
