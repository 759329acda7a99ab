// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation

/// The `action2phone` command: the server and the operator's tools.
@main
struct Action2Phone: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "action2phone",
        abstract: "Action2Phone: an SMS bot on Twilio, and the tools to run it.",
        subcommands: [Serve.self, Replay.self, Chat.self, Users.self, Send.self, Broadcast.self, Outbox.self, Doctor.self, Backup.self]
    )

    static func main() async {
        await main(markingTexts(Array(CommandLine.arguments.dropFirst())))
        // What the command printed may still be buffered, and `print` says nothing when writing fails: an export to a
        // full disk or a closed standard output must not end with status 0.
        if let failure = standardOutputFailure() {
            printError("Error: cannot write the output (\(failure)): what was printed is incomplete")
            Foundation.exit(1)
        }
    }

    /// The options of the commands that take a free text, which may start with "-" ("-5 degrees tonight",
    /// "- bring the hammer"): flags, and options that take a value.
    private static let textCommands: [String: (flags: Set<String>, valued: Set<String>)] = [
        "send": (["--help"], ["--db"]),
        "broadcast": (["--help", "--yes"], ["--db"]),
    ]

    /// The parser reads a text starting with "-" as flags: an `h` among them showed the help and sent nothing
    /// (exit 0; so `send` and `broadcast` take `--help` alone, and "-hello" is an error), and "-5 degrees" was a
    /// missing argument. When `send` or `broadcast` has an argument that reads as
    /// text (`textLike`), its own options go first and every other argument after `--`, where nothing is a flag; an
    /// unknown flag then stays an error (an argument too many). Other commands, and arguments that may be flags
    /// (`--dry-run`, `-x`), are left to the parser.
    static func markingTexts(_ arguments: [String]) -> [String] {
        guard let command = arguments.first, let options = textCommands[command] else { return arguments }
        var own: [String] = []
        var others: [String] = []
        var rest = arguments.dropFirst()
        while let argument = rest.popFirst() {
            if argument == "--" {
                others += rest
                break
            } else if options.valued.contains(argument) {
                own.append(argument)
                if let value = rest.popFirst() { own.append(value) }
            } else if options.flags.contains(argument) || options.valued.contains(where: { argument.hasPrefix($0 + "=") }) {
                own.append(argument)
            } else {
                others.append(argument)
            }
        }
        guard others.contains(where: textLike) else { return arguments }
        return [command] + own + ["--"] + others
    }

    /// A "-" that starts a text, not a flag: followed by white space somewhere in the argument ("- bring the
    /// hammer", "-Meeting at six"), or by something other than a letter or a second "-" ("-5").
    static func textLike(_ argument: String) -> Bool {
        guard argument.hasPrefix("-"), argument.count > 1 else { return false }
        if argument.contains(where: \.isWhitespace) { return true }
        let second = argument.dropFirst().first!
        return !second.isLetter && second != "-"
    }
}

/// Flushes standard output; why not all that was written to it got there, if it did not.
func standardOutputFailure() -> String? {
    let stream = standardOutputStream()
    if fflush(stream) != 0 { return String(cString: strerror(errno)) }
    return stream.map { ferror($0) != 0 } == true ? "a write failed" : nil
}

/// C's `stdout`, which `print` writes through, found by its name: Swift 6 refuses a reference to the imported
/// variable (shared mutable state, though nothing here assigns it).
private func standardOutputStream() -> UnsafeMutablePointer<FILE>? {
    dlsym(nil, "stdout")?.assumingMemoryBound(to: UnsafeMutablePointer<FILE>?.self).pointee
}
