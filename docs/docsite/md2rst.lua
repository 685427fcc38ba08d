-- Copyright: lcfg.xen contributors
-- GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
-- Pandoc filter used by scripts/docs-rst.py: docs/<guide>.md -> docs/docsite/rst/<guide>.rst.
-- Every heading gets a Sphinx label; links between guides become :ref: to those labels.
local PREFIX = "ansible_collections.lcfg.xen.docsite."
local guide = PANDOC_STATE.input_files[1]:match("([^/]+)%.md$")

local function label(name, anchor)
  if anchor == nil or anchor == "" then
    return PREFIX .. name
  end
  return PREFIX .. name .. "." .. anchor
end

function Header(h)
  local target = (h.level == 1) and label(guide) or label(guide, h.identifier)
  h.identifier = "" -- no second, pandoc-made label: they would clash between guides
  return { pandoc.RawBlock("rst", ".. _" .. target .. ":\n"), h }
end

function Link(l)
  local name, anchor = l.target:match("^([%w_-]+)%.md#?(.*)$")
  if name == nil then
    local local_anchor = l.target:match("^#(.+)$")
    if local_anchor == nil then
      return nil
    end
    name, anchor = guide, local_anchor
  end
  local text = pandoc.utils.stringify(l.content):gsub("[<>`]", "")
  if text:match("%.md$") then -- a bare file name: Sphinx shows the section's title instead
    return pandoc.RawInline("rst", ":ref:`" .. label(name, anchor) .. "`")
  end
  return pandoc.RawInline("rst", ":ref:`" .. text .. " <" .. label(name, anchor) .. ">`")
end

function CodeBlock(c)
  -- Pygments knows no mermaid: show the diagram source as a plain literal block.
  if c.classes[1] == "mermaid" then
    c.classes = {}
    return c
  end
end
