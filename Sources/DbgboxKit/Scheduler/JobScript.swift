import Foundation

/// The templates a job script is made from: the scheduler's header and the shared body.
public struct JobTemplates: Sendable, Equatable {
    public static let bodyFile = "job-body.sh.mustache"

    public var header: String
    public var headerName: String
    public var body: String

    public init(header: String, headerName: String, body: String) {
        self.header = header
        self.headerName = headerName
        self.body = body
    }

    /// The header of a step in a Slurm job the user holds (`up --job`).
    public static let slurmAttachFile = "slurm-attach.sh.mustache"

    /// Reads the templates for `kind` from dbgbox's templates directory (`header`: another header
    /// file than the kind's, e.g. `slurmAttachFile`).
    public static func load(directory: String, kind: SchedulerKind, header: String? = nil,
                            fileSystem: FileSystem = LocalFileSystem()) throws -> JobTemplates {
        let dir = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        func text(_ name: String) throws -> String {
            try ImageError.readText("\(dir)/\(name)", option: "template", kind: .template, fileSystem: fileSystem)
        }
        let headerName = header ?? kind.templateFile
        return JobTemplates(header: try text(headerName), headerName: headerName, body: try text(bodyFile))
    }
}

/// Renders the job script that runs a session's container inside a scheduler job. Pure.
///
/// The container's `docker run` argv is `ContainerSpec`'s, with three values only the job knows
/// (its id, the port it picks on the node, the GPUs it was given) left as shell variables; every
/// other word is single-quoted, so no value of the spec is ever interpreted by the job's shell.
public enum JobScript {
    /// Report lines start with this (then ` KEY=VALUE`).
    public static let reportPrefix = "dbgbox-job-report:"
    /// The label carrying the job id on the container (the reaper's key).
    public static let labelJob = "dbgbox.job"
    public static let labelScheduler = "dbgbox.scheduler"

    /// The job's variables that reach the container (by name: docker copies each from the job's
    /// environment when it is set). CUDA_VISIBLE_DEVICES itself is not among them: inside the
    /// container the runtime numbers the job's GPUs from 0, and the job's numbering would hide
    /// them from CUDA; its value is passed as DBGBOX_JOB_CUDA_VISIBLE_DEVICES.
    public static let passedVariables = [
        "SLURM_JOB_ID", "SLURM_JOB_GPUS", "SLURM_JOB_NODELIST", "SLURM_JOB_PARTITION", "SLURM_JOB_NAME",
        "SLURM_CLUSTER_NAME", "SLURMD_NODENAME", "SLURM_JOB_ACCOUNT",
        "PBS_JOBID", "PBS_JOBNAME", "PBS_QUEUE", "PBS_GPUFILE", "CUDA_DEVICE_ORDER",
        "DBGBOX_JOB_CUDA_VISIBLE_DEVICES",
    ]

    /// The variables a rendered word may name, and what marks them in a word before rendering.
    static let variables: Set<String> = ["job_id", "port", "gpus"]
    static func slot(_ name: String) -> String { "\u{1}\(name)\u{1}" }

    public static let portRange = PortRequest.autoRange
    public static let portAttempts = 40
    public static let readySeconds = 60

    /// How long before the time limit the job's shell gets TERM: 120 s, or a quarter of a limit
    /// under 8 minutes (a warning longer than the job would stop the container at once).
    public static func warningSeconds(_ time: TimeLimit?) -> Int {
        guard let time else { return 120 }
        return min(120, max(10, time.seconds / 4))
    }

    public static func render(_ request: JobRequest, templates: JobTemplates) throws -> String {
        let request = try request.validated()
        let spec = request.container
        try DockerfileRenderer.validate(spec.user)
        // The spec's own words are literal text: a control character (a slot's marker among them)
        // is refused before the job's values are slotted in.
        for word in spec.dockerRunArguments where word.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            throw DbgboxError("\(shown(word, limit: 80)) has a control character and cannot be passed to docker in a job script: remove it")
        }
        var extra = ["--label", "\(labelJob)=\(slot("job_id"))", "--label", "\(labelScheduler)=\(request.kind.rawValue)"]
        for name in passedVariables { extra += ["-e", name] }
        var gpuSpec = spec
        gpuSpec.gpu.deviceIDs = [slot("gpus")]
        // GPU devices come from the job (gpu_args, empty when it has none); the profile's CPU/memory stay.
        let argv = gpuSpec.dockerRunArguments(port: slot("port"), gpuArguments: ["\u{1}gpu_args\u{1}"] + (spec.gpu.profile?.dockerArguments ?? []), extra: extra)
        let low = Int(portRange.lowerBound), high = Int(portRange.upperBound)
        let output = request.kind.outputFile(jobID: "\u{0}")
        let outputParts = output.components(separatedBy: "\u{0}")
        let context: [String: Any] = [
            "jobName": spec.name,
            "outputPattern": request.kind.outputFile(jobID: "%j"),
            "outputPrefix": outputParts[0],
            "outputSuffix": outputParts.count > 1 ? outputParts[1] : "",
            "nameQuoted": DockerfileRenderer.shellQuote(spec.name),
            "reportPrefix": reportPrefix,
            "reportPrefixQuoted": DockerfileRenderer.shellQuote(reportPrefix),
            "jobLabelFilter": DockerfileRenderer.shellQuote("label=\(labelJob)="),
            "gpuArguments": request.mapsDevices ? try words(request.container.gpu.runtime.deviceArguments(slot("gpus"))) : "",
            "dockerArguments": try words(argv),
            "execPrefix": try words(["exec"] + DockerClient.rootExecEnvironment),
            "statusFormat": DockerfileRenderer.shellQuote("{{.State.Status}}"),
            "portLow": String(low),
            "portHigh": String(high),
            "portSpan": String(high - low + 1),
            "portAttempts": String(portAttempts),
            "readyTries": String(readySeconds * 2),
            "readySeconds": String(readySeconds),
            "warnSeconds": String(warningSeconds(request.time)),
        ]
        var withBody = context
        withBody["body"] = try DockerfileRenderer.renderTemplate(templates.body, name: JobTemplates.bodyFile, context)
        var script = try DockerfileRenderer.renderTemplate(templates.header, name: templates.headerName, withBody)
        if !script.hasSuffix("\n") { script += "\n" }
        return script
    }

    /// argv as shell words: literal text single-quoted, `slot`s as double-quoted expansions; a
    /// word that is only the `gpu_args` slot becomes `"${gpu_args[@]}"` (no word when empty).
    static func words(_ argv: [String]) throws -> String {
        try argv.map { word -> String in
            if word == "\u{1}gpu_args\u{1}" { return "\"${gpu_args[@]}\"" }
            let parts = word.components(separatedBy: "\u{1}")
            var out = ""
            for (i, part) in parts.enumerated() {
                if i % 2 == 0 {
                    if part.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
                        throw DbgboxError("\(shown(word, limit: 80)) has a control character and cannot be passed to docker in a job script: remove it")
                    }
                    if !part.isEmpty { out += DockerfileRenderer.shellQuote(part) }
                } else {
                    guard variables.contains(part), i < parts.count - 1 else {
                        throw DbgboxError("\(shown(word, limit: 80)) has a control character and cannot be passed to docker in a job script: remove it")
                    }
                    out += "\"${\(part)}\""
                }
            }
            return out.isEmpty ? "''" : out
        }.joined(separator: " ")
    }
}

/// What a job reports about its container, read from its output file.
public struct JobReport: Sendable, Equatable {
    public var values: [String: String]

    public init(values: [String: String]) { self.values = values }

    /// The `dbgbox-job-report: KEY=VALUE` lines of `text`; other lines (the scheduler's own) are ignored.
    public static func parse(_ text: String) -> JobReport {
        var values: [String: String] = [:]
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard line.hasPrefix(JobScript.reportPrefix + " ") else { continue }
            let rest = line.dropFirst(JobScript.reportPrefix.count + 1)
            guard let eq = rest.firstIndex(of: "=") else { continue }
            values[String(rest[..<eq])] = String(rest[rest.index(after: eq)...])
        }
        return JobReport(values: values)
    }

    /// The job said its container is up (every value below is there).
    public var isReady: Bool { values["ready"] == "1" && port != nil && node != nil && container != nil && hostKey != nil }
    public var error: String? { values["error"] }
    public var node: String? { values["node"].flatMap { $0.isEmpty ? nil : $0 } }
    public var port: UInt16? { values["port"].flatMap { UInt16($0) } }
    public var container: String? { values["container"].flatMap { $0.isEmpty ? nil : $0 } }
    /// As the job found them: UUIDs or indices, comma-separated in the script.
    public var gpus: [String] { (values["gpus"] ?? "").split(separator: ",").map(String.init) }
    /// The container's sshd host key line (`ssh-ed25519 AAAA… comment`).
    public var hostKey: String? { values["hostkey"].flatMap { $0.isEmpty ? nil : $0 } }
}
