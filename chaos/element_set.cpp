#include "element_set.h"

namespace monju::chaos {

std::string EncodeElements(const std::set<std::string>& elements) {
  std::string out;
  for (const auto& e : elements) {
    if (!out.empty()) out += '\n';
    out += e;
  }
  return out;
}

void DecodeElementsInto(const std::string& value, std::set<std::string>* out) {
  size_t start = 0;
  while (start < value.size()) {
    size_t end = value.find('\n', start);
    if (end == std::string::npos) end = value.size();
    if (end > start) out->insert(value.substr(start, end - start));
    start = end + 1;
  }
}

std::set<std::string> UnionOfElements(const std::vector<std::string>& values) {
  std::set<std::string> out;
  for (const auto& v : values) DecodeElementsInto(v, &out);
  return out;
}

}  // namespace monju::chaos
