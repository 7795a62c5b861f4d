fn main() {
    std::process::exit(carbyne::cli::main());
}
