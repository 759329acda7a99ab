import ArgumentParser
@main struct Action2Phone: AsyncParsableCommand {}
