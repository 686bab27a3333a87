// Reading the small, flat XML documents object stores answer with (listings, errors): the
// text of an element by tag name, and every element of a tag in order. Not a general XML
// parser: no attributes, namespaces prefixes or CDATA, which these documents do not use;
// hostile input yields missing fields, never a crash.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tensorstream::http {

// The text of the first <tag>…</tag> in `xml`, entities decoded; nullopt when absent.
std::optional<std::string> XmlTagText(std::string_view xml, std::string_view tag);

// Decodes &amp; &lt; &gt; &quot; &apos; and numeric references.
std::string XmlUnescape(std::string_view s);

// "<tag>" or "</tag>". (Appended: `"<" + std::string(tag)` draws a false -Wrestrict from
// GCC 12 at -O3.)
inline std::string XmlTag(std::string_view tag, bool closing) {
  std::string text = closing ? "</" : "<";
  text.append(tag).append(">");
  return text;
}

// Calls `fn` with the inside of every <tag>…</tag> element, in order.
template <typename Fn>
void ForEachXmlElement(std::string_view xml, std::string_view tag, Fn fn) {
  const std::string open = XmlTag(tag, false);
  const std::string close = XmlTag(tag, true);
  size_t pos = 0;
  while (true) {
    const size_t start = xml.find(open, pos);
    if (start == std::string_view::npos) return;
    const size_t body = start + open.size();
    const size_t end = xml.find(close, body);
    if (end == std::string_view::npos) return;
    fn(xml.substr(body, end - body));
    pos = end + close.size();
  }
}

}  // namespace tensorstream::http
