#[derive(clap::Args, Debug, Default)]
pub struct Args {}
pub fn run(_: &Args) -> anyhow::Result<()> {
    Ok(())
}
