// SPDX-License-Identifier: Apache-2.0
import ArgumentParser

/// The `action2phone` command: the server and the operator's tools.
@main
struct Action2Phone: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "action2phone",
        abstract: "Action2Phone: an SMS bot on Twilio, and the tools to run it.",
        subcommands: [Serve.self, Replay.self, Chat.self, Users.self, Send.self, Broadcast.self, Outbox.self, Doctor.self, Backup.self]
    )
}
