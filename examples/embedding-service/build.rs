fn main() {
    // Checks the files (names, versions, encoding, directives) and writes
    // them with their checksums into OUT_DIR; a bad file fails the build.
    migsafe_build::embed("app", "../migrations/app");
}
