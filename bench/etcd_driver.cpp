// etcd v3 through its JSON gateway (POST /v3/kv/put and /v3/kv/range, keys
// and values in base64) with libcurl; one easy handle per client thread
// keeps its connection alive. Thread i talks to endpoint i mod n, as clients
// spreading over the members do; a member that is not the leader forwards
// writes to it. Reads are etcd's default, linearizable ones. A record is the
// key "pk/sk"; a query is a range over the prefix "pk/" with a limit.
#include <curl/curl.h>

#include <mutex>
#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "driver.h"

namespace monju::bench {
namespace {

using nlohmann::json;

std::once_flag curl_init;

class EtcdSession final : public Session {
 public:
  EtcdSession(std::string endpoint, int timeout_ms) : endpoint_(std::move(endpoint)), timeout_ms_(timeout_ms) {}
  ~EtcdSession() override {
    if (headers_) curl_slist_free_all(headers_);
    if (curl_) curl_easy_cleanup(curl_);
  }

  Status Open() {
    curl_ = curl_easy_init();
    if (!curl_) return Status::IOError("curl_easy_init failed");
    headers_ = curl_slist_append(nullptr, "Content-Type: application/json");
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, long(timeout_ms_));
    curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS, long(timeout_ms_));
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &EtcdSession::Collect);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &body_);
    // A cheap call proves the endpoint answers before the run starts.
    json reply;
    return Post("/v3/maintenance/status", "{}", &reply);
  }

  Status Insert(const ItemName& item, std::string_view value) override { return Update(item, value); }

  Status Update(const ItemName& item, std::string_view value) override {
    json request = {{"key", Base64Encode(item.pk + "/" + item.sk)}, {"value", Base64Encode(value)}};
    json reply;
    return Post("/v3/kv/put", request.dump(), &reply);
  }

  Status Read(const ItemName& item) override {
    json request = {{"key", Base64Encode(item.pk + "/" + item.sk)}};
    json reply;
    Status s = Post("/v3/kv/range", request.dump(), &reply);
    if (!s.ok()) return s;
    if (!reply.contains("kvs") || reply["kvs"].empty()) return Status::NotFound("not found: " + item.pk + "/" + item.sk);
    return Status::OK();
  }

  Status Query(const std::string& pk, int limit, size_t* items) override {
    // range_end is the prefix with its last byte plus one: '/' + 1 == '0'.
    json request = {{"key", Base64Encode(pk + "/")}, {"range_end", Base64Encode(pk + "0")}, {"limit", limit}};
    json reply;
    Status s = Post("/v3/kv/range", request.dump(), &reply);
    if (!s.ok()) return s;
    *items = reply.contains("kvs") ? reply["kvs"].size() : 0;
    return Status::OK();
  }

 private:
  static size_t Collect(char* data, size_t size, size_t n, void* user) {
    static_cast<std::string*>(user)->append(data, size * n);
    return size * n;
  }

  Status Post(const char* path, const std::string& body, json* reply) {
    body_.clear();
    const std::string url = endpoint_ + path;
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, long(body.size()));
    CURLcode rc = curl_easy_perform(curl_);
    if (rc == CURLE_OPERATION_TIMEDOUT) return Status::TimedOut(std::string("timed out: ") + curl_easy_strerror(rc));
    if (rc != CURLE_OK) return Status::IOError(std::string("http: ") + curl_easy_strerror(rc));
    long code = 0;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &code);
    *reply = json::parse(body_, nullptr, false);
    if (code != 200) {
      std::string why = reply->is_object() && reply->contains("message") ? (*reply)["message"].dump() : body_.substr(0, 200);
      return Status::IOError("http " + std::to_string(code) + ": " + why);
    }
    if (reply->is_discarded()) return Status::IOError("etcd: reply is not JSON");
    return Status::OK();
  }

  const std::string endpoint_;
  const int timeout_ms_;
  CURL* curl_ = nullptr;
  curl_slist* headers_ = nullptr;
  std::string body_;
};

class EtcdDriver final : public Driver {
 public:
  EtcdDriver(std::vector<std::string> endpoints, int timeout_ms) : endpoints_(std::move(endpoints)), timeout_ms_(timeout_ms) {
    std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  }
  StatusOr<std::unique_ptr<Session>> Connect(int thread_index) override {
    auto session = std::make_unique<EtcdSession>(endpoints_[static_cast<size_t>(thread_index) % endpoints_.size()],
                                                 timeout_ms_);
    Status s = session->Open();
    if (!s.ok()) return s;
    return std::unique_ptr<Session>(std::move(session));
  }
  std::string Describe() const override {
    std::string out = "etcd (" + std::to_string(endpoints_.size()) + " member" + (endpoints_.size() == 1 ? "" : "s") + ":";
    for (const auto& e : endpoints_) out += " " + e;
    return out + ")";
  }

 private:
  const std::vector<std::string> endpoints_;
  const int timeout_ms_;
};

}  // namespace

std::unique_ptr<Driver> MakeEtcdDriver(std::vector<std::string> endpoints, int timeout_ms) {
  return std::make_unique<EtcdDriver>(std::move(endpoints), timeout_ms);
}

}  // namespace monju::bench
