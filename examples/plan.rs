//! Prints the production plan of a delta for a source: `cargo run --example plan -- SOURCE DELTA`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let source = adudiffapi::apply::map_input(args[0].as_ref())?;
    let delta = adudiffapi::format::parse_delta(adudiffapi::apply::map_input(args[1].as_ref())?)?;
    let plan = adudiffapi::plan::plan(&delta, &adudiffapi::format::writer::item_of(&source))?;
    for (id, node) in plan.nodes.iter().enumerate() {
        println!("#{id:<4} {:<40} {:?}", node.item.describe(), node.op);
    }
    println!("root: #{}", plan.root);
    Ok(())
}
