//! Tool lookup, checks and the commands run, against stand-in tools.
use super::super::project::Language;
use super::*;
use std::os::unix::fs::PermissionsExt;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "wasmon-toolchain-{tag}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes an executable stand-in tool. A child process writes it: were this
/// (multi-threaded) test process to hold it open for writing, a fork by
/// another test in between could keep that descriptor until its exec, and
/// running the script would then fail with "Text file busy" (ETXTBSY).
fn script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"printf '#!/bin/sh\n%s\n' "$2" > "$1" && chmod 755 "$1""#)
        .arg("sh")
        .arg(path)
        .arg(body)
        .status()
        .unwrap();
    assert!(status.success(), "cannot write {}", path.display());
}

#[test]
fn the_wasm_artifact_is_read_from_cargo_messages() {
    let artifact = r#"{"reason":"compiler-artifact","target":{"kind":["cdylib"]},"filenames":["/t/wasm32-wasip2/release/demo.wasm"]}"#;
    assert_eq!(
        wasm_artifact(artifact),
        Some(PathBuf::from("/t/wasm32-wasip2/release/demo.wasm"))
    );
    let rlib =
        r#"{"reason":"compiler-artifact","filenames":["/t/libserde.rlib","/t/libserde.rmeta"]}"#;
    assert_eq!(wasm_artifact(rlib), None);
    assert_eq!(
        wasm_artifact(r#"{"reason":"build-finished","success":true}"#),
        None
    );
    assert_eq!(wasm_artifact("not json"), None);
}

#[test]
fn a_missing_wasm_target_names_the_rustup_command() {
    let root = temp_dir("target");
    let sysroot = root.join("sysroot");
    std::fs::create_dir_all(sysroot.join("lib/rustlib/x86_64-unknown-linux-gnu")).unwrap();
    script(
        &root.join("bin/rustc"),
        &format!("echo {}", sysroot.display()),
    );
    let search = Search {
        path: Some(root.join("bin").into_os_string()),
        virtual_env: None,
    };
    let error = check_rust_target(&root, &search).unwrap_err().to_string();
    assert!(error.contains("rustup target add wasm32-wasip2"), "{error}");
    std::fs::create_dir_all(sysroot.join("lib/rustlib/wasm32-wasip2")).unwrap();
    check_rust_target(&root, &search).unwrap();
    let error = check_rust_target(&root, &Search::default())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("rustc not found") && error.contains("rustup"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn versions_are_the_last_word_of_the_first_line() {
    assert_eq!(
        parse_version("componentize-py 0.25.1\n").as_deref(),
        Some("0.25.1")
    );
    assert_eq!(parse_version("0.23.0\n").as_deref(), Some("0.23.0"));
    assert_eq!(parse_version("v20.20.2").as_deref(), Some("20.20.2"));
    assert_eq!(parse_version(""), None);
}

#[test]
fn project_local_tools_come_before_others_and_need_the_exec_bit() {
    let root = temp_dir("lookup");
    let local = root.join("project/.venv/bin");
    let venv = root.join("venv/bin");
    script(&venv.join("componentize-py"), "echo componentize-py 0.1.0");
    let on_path = root.join("path");
    script(
        &on_path.join("componentize-py"),
        "echo componentize-py 0.25.0",
    );
    let search = Search {
        path: Some(on_path.clone().into_os_string()),
        virtual_env: None,
    };
    assert_eq!(
        find_tool("componentize-py", &[Some(local.clone())], &search),
        Some(on_path.join("componentize-py"))
    );
    assert_eq!(
        find_tool(
            "componentize-py",
            &[Some(local.clone()), Some(venv.clone())],
            &search
        ),
        Some(venv.join("componentize-py"))
    );
    script(
        &local.join("componentize-py"),
        "echo componentize-py 0.25.1",
    );
    let found = find_tool(
        "componentize-py",
        &[Some(local.clone()), Some(venv.clone())],
        &search,
    );
    assert_eq!(found, Some(local.join("componentize-py")));
    assert_eq!(
        version(&local.join("componentize-py")).as_deref(),
        Some("0.25.1")
    );
    std::fs::set_permissions(
        local.join("componentize-py"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert_eq!(
        find_tool(
            "componentize-py",
            &[Some(local), Some(venv.clone())],
            &search
        ),
        Some(venv.join("componentize-py"))
    );
    assert_eq!(
        find_tool("componentize-py", &[None], &Search::default()),
        None
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_missing_python_tool_names_the_install_command() {
    let dir = temp_dir("nopy");
    let project = Project {
        dir: dir.clone(),
        language: Language::Python,
        name: "demo".into(),
        world: "collector".into(),
        wit: PathBuf::from("wit"),
        python_path: Vec::new(),
        root: dir.clone(),
    };
    let nowhere = Search::default();
    let error = format!(
        "{:#}",
        python(&project, &dir.join("out.wasm"), &nowhere).unwrap_err()
    );
    assert!(
        error.contains(&format!(
            ".venv/bin/pip install componentize-py=={COMPONENTIZE_PY_VERSION}"
        )),
        "{error}"
    );
    script(
        &dir.join(".venv/bin/componentize-py"),
        "echo componentize-py 0.25.1",
    );
    let error = format!(
        "{:#}",
        python(&project, &dir.join("out.wasm"), &nowhere).unwrap_err()
    );
    assert!(error.contains("app.py is missing"), "{error}");

    let js_project = Project {
        language: Language::Js,
        ..project
    };
    let error = format!(
        "{:#}",
        js(&js_project, &dir.join("out.wasm"), &nowhere).unwrap_err()
    );
    assert!(
        error.contains("node not found") && error.contains("nodejs"),
        "{error}"
    );
    script(&dir.join("bin/node"), "echo v20.0.0");
    let with_node = Search {
        path: Some(dir.join("bin").into_os_string()),
        virtual_env: None,
    };
    let error = format!(
        "{:#}",
        js(&js_project, &dir.join("out.wasm"), &with_node).unwrap_err()
    );
    let install = format!(
        "npm i -D --save-exact @bytecodealliance/componentize-js@{COMPONENTIZE_JS_VERSION} \
         @bytecodealliance/jco@{JCO_VERSION}"
    );
    assert!(error.contains(&install), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tool that answers `--version` with `version`, else runs `body`
/// after writing its working directory and arguments to `ROOT/record`.
fn tool(path: &Path, version: &str, root: &Path, body: &str) {
    let record = root.join("record").display().to_string();
    let recording = format!("echo $(pwd) \"$@\" > {record}");
    let version = format!("if [ \"$1\" = --version ]; then echo {version}; exit 0; fi");
    script(path, &format!("{version}\n{recording}\n{body}"));
}

/// `ROOT/example` with `file`, `ROOT/wit/0.2.0` and `ROOT/sdk`, and a project there.
fn example(tag: &str, file: &str, language: Language, wit: &str) -> (PathBuf, Project) {
    let root = temp_dir(tag).canonicalize().unwrap();
    let dir = root.join("example");
    for sub in ["example", "wit/0.2.0", "sdk"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::write(dir.join(file), "").unwrap();
    let project = Project {
        dir: dir.clone(),
        language,
        name: "demo".into(),
        world: "rule".into(),
        wit: PathBuf::from(wit),
        python_path: vec![PathBuf::from("../sdk")],
        root: root.clone(),
    };
    (root, project)
}

#[test]
fn python_runs_in_the_project_with_its_wit_and_python_path() {
    let (root, project) = example("pycmd", "app.py", Language::Python, "../wit/0.2.0");
    let dir = project.dir.display().to_string();
    let py = project.dir.join(".venv/bin/componentize-py");
    tool(&py, "componentize-py 0.25.1", &root, "");
    let out = project.dir.join("demo.wasm");
    python(&project, &out, &Search::default()).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("record")).unwrap(),
        format!(
            "{dir} -d ../wit/0.2.0 -w rule componentize app -p . -p ../sdk -o {}\n",
            out.display()
        )
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn js_runs_from_its_root_and_explains_imports_outside_it() {
    let (root, project) = example("jscmd", "plugin.js", Language::Js, "../wit/0.2.0");
    script(&root.join("bin/node"), "echo v20.0.0");
    let search = Search {
        path: Some(root.join("bin").into_os_string()),
        virtual_env: None,
    };
    let js_tool = project.dir.join("node_modules/.bin/componentize-js");
    tool(&js_tool, "0.23.0", &root, "");
    let out = project.dir.join("demo.wasm");
    js(&project, &out, &search).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("record")).unwrap(),
        format!(
            "{} example/plugin.js -w {}/../wit/0.2.0 -n rule -d http fetch-event -o {}\n",
            root.display(),
            project.dir.display(),
            out.display()
        )
    );
    let outside = "echo 'Error loading module \"../sdk/wasmon.js\" (resolved path' >&2; exit 1";
    tool(&js_tool, "0.23.0", &root, outside);
    let error = format!("{:#}", js(&project, &out, &search).unwrap_err());
    assert!(
        error.contains("outside") && error.contains("\"wasmon\".root"),
        "{error}"
    );
    tool(
        &js_tool,
        "0.23.0",
        &root,
        "echo 'SyntaxError: bad token' >&2; exit 1",
    );
    let error = format!("{:#}", js(&project, &out, &search).unwrap_err());
    assert!(
        error.contains("errors are above") && !error.contains("outside"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&root);
}
