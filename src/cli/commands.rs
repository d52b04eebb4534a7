//! The argh structs: the command line exactly as typed (after `argv` expansion), one
//! struct per command, the doc comments being the `--help` text. No logic here: `mod.rs`
//! turns a parsed command into an engine request.

use std::path::PathBuf;

use argh::FromArgs;

/// camada: a rootless, daemonless container engine with Docker's command line.
#[derive(FromArgs, Debug)]
#[argh(help_triggers("--help"))]
pub struct Camada {
    /// where images and containers are stored (default $CAMADA_ROOT, else
    /// $XDG_DATA_HOME/camada, else ~/.local/share/camada)
    #[argh(option)]
    pub root: Option<PathBuf>,
    /// where runtime state goes (default $CAMADA_RUNROOT, else $XDG_RUNTIME_DIR/camada,
    /// else /tmp/camada-$UID)
    #[argh(option)]
    pub runroot: Option<PathBuf>,
    #[argh(subcommand)]
    pub command: Command,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    Images(Images),
    Tag(Tag),
    Rmi(Rmi),
    Inspect(Inspect),
    History(History),
    Save(Save),
    Load(Load),
    Import(Import),
    Build(super::build::Build),
    Image(ImageGroup),
    System(SystemGroup),
    Info(Info),
    Version(Version),
    Pull(super::registry::Pull),
    Push(super::registry::Push),
    Login(super::registry::Login),
    Logout(super::registry::Logout),
    Search(super::registry::Search),
    Run(super::containers::Run),
    Create(super::containers::Create),
    Start(super::containers::Start),
    Stop(super::containers::Stop),
    Restart(super::containers::Restart),
    Kill(super::containers::Kill),
    Rm(super::containers::Rm),
    Ps(super::containers::Ps),
    Exec(super::containers::Exec),
    Logs(super::containers::Logs),
    Attach(super::containers::Attach),
    Wait(super::containers::Wait),
    Port(super::containers::Port),
    Container(super::containers::ContainerGroup),
    Volume(super::volumes::VolumeGroup),
    Diff(super::fsops::Diff),
    Cp(super::fsops::Cp),
    Commit(super::fsops::Commit),
    Mount(super::fsops::Mount),
    Umount(super::fsops::Umount),
    Unshare(super::fsops::Unshare),
    Top(super::stats::Top),
    Stats(super::stats::Stats),
}

/// List images (also: image ls).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "images", help_triggers("--help"))]
pub struct Images {
    /// show all images (default hides intermediate images)
    #[argh(switch, short = 'a')]
    pub all: bool,
    /// only show image IDs
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// show digests
    #[argh(switch)]
    pub digests: bool,
    /// don't truncate output
    #[argh(switch)]
    pub no_trunc: bool,
    /// format the output with a Go template ('{{.Repository}}:{{.Tag}}', 'table ...'),
    /// or 'json'
    #[argh(option)]
    pub format: Option<String>,
    /// filter the list: dangling=true|false, reference=PATTERN (repeatable)
    #[argh(option, short = 'f')]
    pub filter: Vec<String>,
    /// only images of this repository (REPO or REPO:TAG)
    #[argh(positional, arg_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE (also: image tag).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "tag", help_triggers("--help"))]
pub struct Tag {
    /// the image to tag (name, ID or ID prefix)
    #[argh(positional, arg_name = "SOURCE_IMAGE")]
    pub source: String,
    /// the new name
    #[argh(positional, arg_name = "TARGET_IMAGE")]
    pub target: String,
}

/// Remove one or more images (also: image rm).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "rmi", help_triggers("--help"))]
pub struct Rmi {
    /// force removal: untag every name of an image given by ID, remove an image a
    /// stopped container uses
    #[argh(switch, short = 'f')]
    pub force: bool,
    /// images to remove (name, ID or ID prefix)
    #[argh(positional, arg_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Return low-level information on images (also: image inspect).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "inspect", help_triggers("--help"))]
pub struct Inspect {
    /// format the output using a Go template ('{{.Config.Cmd}}'), or 'json'
    #[argh(option, short = 'f')]
    pub format: Option<String>,
    /// only inspect objects of this type (image)
    #[argh(option, long = "type")]
    pub kind: Option<String>,
    /// images to inspect (name, ID or ID prefix)
    #[argh(positional, arg_name = "NAME")]
    pub names: Vec<String>,
}

/// Show the history of an image (also: image history).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "history", help_triggers("--help"))]
pub struct History {
    /// don't truncate output
    #[argh(switch)]
    pub no_trunc: bool,
    /// only show image IDs
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// print sizes and dates in human readable format (default true)
    #[argh(option, short = 'H', default = "true")]
    pub human: bool,
    /// format the output with a Go template ('{{.ID}} {{.CreatedBy}}', 'table ...'), or
    /// 'json'
    #[argh(option)]
    pub format: Option<String>,
    /// the image (name, ID or ID prefix)
    #[argh(positional, arg_name = "IMAGE")]
    pub image: String,
}

/// Save one or more images to a tar archive (streamed to stdout by default).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "save", help_triggers("--help"))]
pub struct Save {
    /// write to a file instead of stdout
    #[argh(option, short = 'o')]
    pub output: Option<PathBuf>,
    /// archive format: docker-archive (default) or oci-archive
    #[argh(option)]
    pub format: Option<String>,
    /// images to save
    #[argh(positional, arg_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Load an image from a tar archive or stdin (docker-archive or OCI archive, plain,
/// gzip or zstd).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "load", help_triggers("--help"))]
pub struct Load {
    /// read from a tar archive file instead of stdin
    #[argh(option, short = 'i')]
    pub input: Option<PathBuf>,
    /// suppress progress output (accepted as docker's; load shows no progress yet)
    #[argh(switch, short = 'q')]
    pub quiet: bool,
}

/// Import the contents of a tarball to create a filesystem image.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "import", help_triggers("--help"))]
pub struct Import {
    /// apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, WORKDIR, USER,
    /// LABEL, EXPOSE, VOLUME)
    #[argh(option, short = 'c')]
    pub change: Vec<String>,
    /// set a commit message for the imported image
    #[argh(option, short = 'm')]
    pub message: Option<String>,
    /// the rootfs tarball, or - for stdin
    #[argh(positional, arg_name = "FILE|-")]
    pub file: String,
    /// the name to give the image
    #[argh(positional, arg_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// Manage images (image ls, rm, inspect, history, tag, save, load, import, prune, tree).
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "image",
    help_triggers("--help"),
    note = "Also: image ls = images, image rm = rmi, image inspect, history, tag, save, \
            load, import = the commands of those names."
)]
pub struct ImageGroup {
    #[argh(subcommand)]
    pub command: ImageCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum ImageCommand {
    Prune(ImagePrune),
    Tree(ImageTree),
}

/// Remove unused images: dangling ones, or with -a every image no container uses.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "prune", help_triggers("--help"))]
pub struct ImagePrune {
    /// remove all unused images, not just dangling ones
    #[argh(switch, short = 'a')]
    pub all: bool,
    /// do not prompt for confirmation
    #[argh(switch, short = 'f')]
    pub force: bool,
}

/// Draw an image's layer stack: each layer's size, file count, the instruction that
/// made it, and what it adds (+), changes (~) and deletes (-) relative to the layers below.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "tree", help_triggers("--help"))]
pub struct ImageTree {
    /// list every changed path (default: the first few of each layer)
    #[argh(switch)]
    pub no_trunc: bool,
    /// the image (name, ID or ID prefix)
    #[argh(positional, arg_name = "IMAGE")]
    pub image: String,
}

/// Manage camada (system df, system prune, system info).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "system", help_triggers("--help"))]
pub struct SystemGroup {
    #[argh(subcommand)]
    pub command: SystemCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum SystemCommand {
    Prune(SystemPrune),
    Df(SystemDf),
}

/// Remove unused data: dangling images (with -a every unused image).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "prune", help_triggers("--help"))]
pub struct SystemPrune {
    /// remove all unused images, not just dangling ones
    #[argh(switch, short = 'a')]
    pub all: bool,
    /// do not prompt for confirmation
    #[argh(switch, short = 'f')]
    pub force: bool,
}

/// Show disk usage.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "df", help_triggers("--help"))]
pub struct SystemDf {}

/// Display system-wide information: store paths, id mappings, FUSE and user-namespace
/// support (also: system info).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "info", help_triggers("--help"))]
pub struct Info {}

/// Show the camada version information.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "version", help_triggers("--help"))]
pub struct Version {}
