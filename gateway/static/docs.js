// /docs: the gateway's /openapi.json rendered for people, with no script from elsewhere.
const $ = (id) => document.getElementById(id);

function element(tag, text = "", className = "") {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function resolve(document, schema) {
  if (schema && schema.$ref) {
    return schema.$ref.replace(/^#\//, "").split("/").reduce((node, key) => node?.[key], document) || schema;
  }
  return schema;
}

function schemaText(document, schema, depth = 0) {
  schema = resolve(document, schema);
  if (!schema || depth > 4) return "";
  if (schema.type === "array") return `array of ${schemaText(document, schema.items, depth + 1) || "items"}`;
  if (schema.properties) {
    const fields = Object.entries(schema.properties).map(([name, value]) => {
      const required = (schema.required || []).includes(name) ? "" : "?";
      return `${name}${required}: ${schemaText(document, value, depth + 1) || "any"}`;
    });
    return `{ ${fields.join(", ")} }`;
  }
  if (schema.oneOf || schema.anyOf) {
    return (schema.oneOf || schema.anyOf).map((s) => schemaText(document, s, depth + 1)).join(" | ");
  }
  return schema.type || (schema.enum ? schema.enum.join(" | ") : "");
}

function operation(document, path, method, op) {
  const section = element("section", "", "card");
  const id = `${method}-${path}`.replace(/[^A-Za-z0-9]+/g, "-");
  section.id = id;
  const title = element("h3");
  title.append(element("span", method.toUpperCase(), `method method-${method}`), " ", element("code", path));
  section.append(title);
  if (op.summary) section.append(element("p", op.summary));
  if (op.description) section.append(element("p", op.description, "muted"));
  const parameters = op.parameters || [];
  if (parameters.length) {
    section.append(element("h4", "Parameters"));
    const list = element("ul");
    for (const p of parameters.map((x) => resolve(document, x))) {
      list.append(element("li", `${p.name} (${p.in}${p.required ? ", required" : ""}): ${schemaText(document, p.schema)}`));
    }
    section.append(list);
  }
  const body = op.requestBody && resolve(document, op.requestBody);
  if (body && body.content) {
    section.append(element("h4", "Request body"));
    const list = element("ul");
    for (const [type, media] of Object.entries(body.content)) {
      list.append(element("li", `${type}: ${schemaText(document, media.schema) || "see the description"}`));
    }
    section.append(list);
  }
  section.append(element("h4", "Responses"));
  const responses = element("ul");
  for (const [status, response] of Object.entries(op.responses || {})) {
    const r = resolve(document, response);
    const content = Object.entries(r.content || {}).map(([type, m]) => ` ${type} ${schemaText(document, m.schema)}`);
    responses.append(element("li", `${status}: ${r.description || ""}${content.join(";")}`));
  }
  section.append(responses);
  return { section, id };
}

async function main() {
  let document;
  try {
    const response = await fetch("/openapi.json");
    document = await response.json();
  } catch (error) {
    $("docs-intro").textContent = `Could not load /openapi.json: ${error.message}`;
    return;
  }
  $("docs-intro").textContent = `${document.info.title} ${document.info.version}. ${document.info.description || ""}`;
  const toc = element("ul");
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!["get", "post", "put", "patch", "delete"].includes(method)) continue;
      const { section, id } = operation(document, path, method, op);
      $("docs-paths").append(section);
      const link = element("a", `${method.toUpperCase()} ${path}`);
      link.href = `#${id}`;
      const li = element("li");
      li.append(link);
      toc.append(li);
    }
  }
  $("docs-toc").append(toc);
}

main();
