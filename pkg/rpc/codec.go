package rpc

import (
	"bytes"
	"context"
	"crypto/rand"
	"strconv"
	"unicode/utf8"

	"github.com/pushbackhq/pushback/pkg/apierr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// A request grpc-go cannot decode (a proto3 string holding bytes that are
// not UTF-8, a truncated field) is the caller's fault, yet grpc-go answers
// it Internal, whatever the codec returns, before any interceptor runs.
// refusingCodec decodes with the proto codec and, when that fails, leaves
// the message empty but for a mark in its unknown fields naming the field
// at fault; the interceptors that run last before the handler (after
// authentication) find the mark and answer InvalidArgument, with the
// field violation every other bad request gets.
//
// The mark carries a random key of the server, so a caller cannot forge
// one; a message without unknown fields, the usual case, costs the
// interceptor one length check.

// markField is the field number of the mark: the largest there is, one no
// Pushback message will use.
const markField = protowire.MaxValidNumber

// Kinds of undecodable message.
const (
	markInvalidUTF8 byte = 'u'
	markMalformed   byte = 'm'
)

type refusingCodec struct {
	encoding.CodecV2
	key [16]byte
}

func newRefusingCodec() *refusingCodec {
	c := &refusingCodec{CodecV2: encoding.GetCodecV2(protocodec.Name)}
	_, _ = rand.Read(c.key[:])
	return c
}

// Unmarshal implements encoding.CodecV2.
func (c *refusingCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	kind, field := markMalformed, "request"
	if f, bad := invalidString(m.ProtoReflect().Descriptor(), data.Materialize(), ""); bad {
		kind, field = markInvalidUTF8, f
	}
	proto.Reset(m)
	mark := protowire.AppendTag(nil, markField, protowire.BytesType)
	mark = protowire.AppendBytes(mark, append(append(c.key[:len(c.key):len(c.key)], kind), field...))
	m.ProtoReflect().SetUnknown(mark)
	return nil
}

// refusal returns the InvalidArgument for a message the codec marked, or
// nil.
func (c *refusingCodec) refusal(v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return nil
	}
	u := m.ProtoReflect().GetUnknown()
	if len(u) == 0 {
		return nil
	}
	num, typ, n := protowire.ConsumeTag(u)
	if n < 0 || num != markField || typ != protowire.BytesType {
		return nil
	}
	b, n := protowire.ConsumeBytes(u[n:])
	if n < 0 || len(b) <= len(c.key) || !bytes.Equal(b[:len(c.key)], c.key[:]) {
		return nil
	}
	field := string(b[len(c.key)+1:])
	if b[len(c.key)] == markInvalidUTF8 {
		return apierr.InvalidArgument(apierr.FieldViolation{Field: field, Description: "is not valid UTF-8"})
	}
	return apierr.InvalidArgument(apierr.FieldViolation{Field: field,
		Description: "is not a valid " + string(m.ProtoReflect().Descriptor().FullName()) + " (protocol buffers wire format)"})
}

func (c *refusingCodec) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := c.refusal(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (c *refusingCodec) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, refusingStream{ServerStream: ss, c: c})
}

// refusingStream answers each received message the codec marked with its
// InvalidArgument.
type refusingStream struct {
	grpc.ServerStream
	c *refusingCodec
}

func (s refusingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.c.refusal(m)
}

// invalidString returns the path ("events[0].user_id") of the first string
// field of b, a message of type md on the wire, that holds bytes that are
// not UTF-8.
func invalidString(md protoreflect.MessageDescriptor, b []byte, prefix string) (string, bool) {
	var seen map[protowire.Number]int
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		if typ != protowire.BytesType || fd == nil {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return "", false
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		path := string(fd.Name())
		if prefix != "" {
			path = prefix + "." + path
		}
		if fd.IsList() {
			if seen == nil {
				seen = map[protowire.Number]int{}
			}
			path += "[" + strconv.Itoa(seen[num]) + "]"
			seen[num]++
		}
		switch {
		case fd.Kind() == protoreflect.StringKind:
			if !utf8.Valid(v) {
				return path, true
			}
		case fd.IsMap():
			// A map is named as a whole: its entries have no field names.
			if _, bad := invalidString(fd.Message(), v, ""); bad {
				return path, true
			}
		case fd.Message() != nil:
			if p, bad := invalidString(fd.Message(), v, path); bad {
				return p, true
			}
		}
	}
	return "", false
}
